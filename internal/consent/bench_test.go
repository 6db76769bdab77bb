package consent

import (
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

var benchPurposes = []lethe.Purpose{
	{Key: "billing", Basis: lethe.BasisContract},
	{Key: "newsletter", Basis: lethe.BasisConsent, Policy: lethe.PolicyVersion{Version: "v1", TextHash: strings.Repeat("a", 64)}},
	{Key: "research", Basis: lethe.BasisConsent, Policy: lethe.PolicyVersion{Version: "v1", TextHash: strings.Repeat("b", 64)}},
	{Key: "analytics", Basis: lethe.BasisLegitimateInterests},
}

// benchState folds a ledger of n subjects: each consented to the newsletter
// and, every other one, to research; every tenth objected to analytics.
func benchState(n int) (*State, []string) {
	st := NewState(benchPurposes)
	ids := make([]string, n)
	rev := uint64(0)
	add := func(ev lethe.ConsentEvent) {
		rev++
		ev.Revision = rev
		st.Apply(&ev)
	}
	for i := range ids {
		ids[i] = string(BenchID(nil, i))
		add(lethe.ConsentEvent{Tenant: "default", SubjectID: ids[i], Purpose: "newsletter", Kind: lethe.ConsentGrant, PolicyVersion: "v1", TextHash: strings.Repeat("a", 64)})
		if i%2 == 0 {
			add(lethe.ConsentEvent{Tenant: "default", SubjectID: ids[i], Purpose: "research", Kind: lethe.ConsentGrant, PolicyVersion: "v1", TextHash: strings.Repeat("b", 64)})
		}
		if i%10 == 0 {
			add(lethe.ConsentEvent{Tenant: "default", SubjectID: ids[i], Purpose: "analytics", Kind: lethe.ConsentObject, Reason: "particular_situation"})
		}
	}
	return st, ids
}

// BenchmarkDecide measures the decision itself, from memory: a hot key on
// one core, and random subjects × purposes over 1,000,000 subjects on one
// core and on all of them. The random IDs are formatted into a buffer, as
// an ID arrives in a request, rather than picked from a slice of a million
// strings, whose own trip to memory would cost as much as the check's.
func BenchmarkDecide(b *testing.B) {
	st, ids := benchState(1_000_000)
	now := time.Now()
	b.Run("hot", func(b *testing.B) {
		for b.Loop() {
			if !st.Decide("default", ids[7], "newsletter", now, false).Allowed {
				b.Fatal("denied")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
	b.Run("random-1M-subjects-4-purposes", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		id := make([]byte, 0, 32)
		for b.Loop() {
			id = BenchID(id, r.IntN(len(ids)))
			st.Decide("default", string(id), benchPurposes[r.IntN(4)].Key, now, false)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
	b.Run("random-1M-subjects-4-purposes-parallel", func(b *testing.B) {
		var mu sync.RWMutex // as the client's cache holds it
		var seed atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(seed.Add(1), 2))
			id := make([]byte, 0, 32)
			for pb.Next() {
				id = BenchID(id, r.IntN(len(ids)))
				mu.RLock()
				st.Decide("default", string(id), benchPurposes[r.IntN(4)].Key, now, false)
				mu.RUnlock()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
}

// BenchmarkCheckBatch filters 100,000 subjects (of a ledger of 1,000,000)
// for a consent purpose, as POST /v1/consent/check does after decoding.
func BenchmarkCheckBatch(b *testing.B) {
	st, ids := benchState(1_000_000)
	s := &Service{st: st, now: time.Now, changed: make(chan struct{})}
	r := rand.New(rand.NewPCG(3, 4))
	batch := make([]string, 100_000)
	for i := range batch {
		batch[i] = ids[r.IntN(len(ids))]
	}
	for b.Loop() {
		d, err := s.CheckBatch(b.Context(), "default", "research", batch, 0)
		if err != nil || len(d.Allowed)+len(d.Denied) != len(batch) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/batch")
}
