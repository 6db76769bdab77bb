package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

const sharedOrigin = "lethe.audit/shared-test"

// sharedEnv is one data store and one key store, as a deployment of
// several instances shares them.
type sharedEnv struct {
	dataDSN  string
	keys     *KeyStore
	signer   note.Signer
	verifier note.Verifier
}

func newSharedEnv(t testing.TB) *sharedEnv {
	t.Helper()
	seed := sha256.Sum256([]byte("shared audit test seed"))
	signer, vkey, err := audit.NewSigner(sharedOrigin, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &sharedEnv{
		dataDSN: testsvc.Postgres(t),
		keys:    NewKeyStore(openTest(t, OpenKeys, testsvc.Postgres(t))),
		signer:  signer, verifier: v,
	}
}

// instance opens the shared log as one more instance would: its own pool.
func (e *sharedEnv) instance(t testing.TB) (*audit.SharedLog, *AuditLog) {
	t.Helper()
	st, err := NewAuditLog(t.Context(), openTest(t, OpenData, e.dataDSN))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.OpenShared(t.Context(), st, audit.Options{Origin: sharedOrigin, Signer: e.signer, Anchor: e.keys, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l, st
}

func (e *sharedEnv) verify(t *testing.T, st *AuditLog) *audit.Report {
	t.Helper()
	_, anchored, err := e.keys.LatestCheckpoint(t.Context(), sharedOrigin)
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.VerifySource(t.Context(), st, audit.VerifyOptions{Origin: sharedOrigin, Verifier: e.verifier, Trusted: map[string][]byte{"key store checkpoint": anchored}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sharedEvent(instance, g, i int) lethe.AuditEvent {
	return lethe.AuditEvent{Time: time.Now().UTC(), Action: "subject.read", Outcome: "ok", KeyID: fmt.Sprintf("key_%d_%d", instance, g),
		Role: lethe.RoleService, Tenant: "acme", SubjectID: fmt.Sprintf("sub_%d", i%7), Fields: []string{"email"}}
}

// TestSharedAuditLog: two instances append concurrently to one log; the
// database gives one order without gaps, one instance signs checkpoints,
// and the whole log verifies and proves a subject's events.
func TestSharedAuditLog(t *testing.T) {
	e := newSharedEnv(t)
	a, st := e.instance(t)
	b, _ := e.instance(t)
	var mu sync.Mutex
	var firsts []uint64
	var wg sync.WaitGroup
	for inst, l := range []*audit.SharedLog{a, b} {
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					first, err := l.Append(context.Background(), mustJSON(sharedEvent(inst, g, i)), mustJSON(sharedEvent(inst, g, i+1)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					firsts = append(firsts, first)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	slices.Sort(firsts)
	for i, f := range firsts {
		if f != uint64(2*i) {
			t.Fatalf("appends got first indices %v…, want 0, 2, 4, … (no gap, no overlap)", firsts[:min(len(firsts), i+3)])
		}
	}
	// The subject's events, proven, through either instance.
	bundle, err := b.SubjectEvents(t.Context(), lethe.Actor{KeyID: "key_dpo", Role: lethe.RoleDPO}, lethe.AuditQuery{Tenant: "acme", SubjectID: "sub_3"})
	if err != nil {
		t.Fatal(err)
	}
	// Each goroutine's 100 appends name sub_3 28 times; and the query.
	if n := len(bundle.Events); n != 16*28+1 {
		t.Errorf("got %d events of sub_3, want %d", n, 16*28+1)
	}
	if _, err := audit.VerifyBundle(bundle, sharedOrigin, e.verifier); err != nil {
		t.Fatalf("bundle from the shared log: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.verify(t, st)
	if !r.OK() || r.Entries != 3201 || r.Sealed != 3201 {
		t.Fatalf("verify: %+v", r)
	}

	// Tampering in the database is found and placed.
	db := openTest(t, OpenData, e.dataDSN)
	if _, err := db.pool.Exec(t.Context(), `UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'sub_', 'sub-'), 'UTF8') WHERE epoch = 1 AND idx = 1234`); err != nil {
		t.Fatal(err)
	}
	r = e.verify(t, st)
	if r.OK() || r.Problems[0].Index != 1234 || !strings.Contains(r.Problems[0].What, "entry 1234 differs") {
		t.Errorf("after changing entry 1234: %+v", r.Problems)
	}
}

// TestSharedAuditLeaderFailover: when the leading instance stops, another
// takes the lead and keeps signing.
func TestSharedAuditLeaderFailover(t *testing.T) {
	e := newSharedEnv(t)
	a, st := e.instance(t)
	if _, err := a.Append(t.Context(), mustJSON(sharedEvent(0, 0, 0))); err != nil {
		t.Fatal(err)
	}
	waitTree(t, st, 1)
	b, _ := e.instance(t)
	if err := a.Close(); err != nil { // a led: it was alone
		t.Fatal(err)
	}
	if _, err := b.Append(t.Context(), mustJSON(sharedEvent(1, 0, 1))); err != nil {
		t.Fatal(err)
	}
	waitTree(t, st, 2)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(t, st); !r.OK() || r.Sealed != 2 {
		t.Fatalf("verify: %+v", r)
	}
}

// TestSharedAuditRollbackRefused: a data store restored from an older
// backup holds fewer entries than the key store's checkpoint.
func TestSharedAuditRollbackRefused(t *testing.T) {
	e := newSharedEnv(t)
	a, st := e.instance(t)
	for i := range 10 {
		if _, err := a.Append(t.Context(), mustJSON(sharedEvent(0, 0, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, OpenData, e.dataDSN)
	for _, q := range []string{
		`DELETE FROM audit_entries WHERE idx >= 5`, `DELETE FROM audit_hashes`, `DELETE FROM audit_checkpoints`,
		`UPDATE audit_logs SET size = 5, tree_size = 0`,
	} {
		if _, err := db.pool.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	_, err := audit.OpenShared(t.Context(), st, audit.Options{Origin: sharedOrigin, Signer: e.signer, Anchor: e.keys})
	if !errors.Is(err, audit.ErrDamaged) || !strings.Contains(err.Error(), "key store's checkpoint is for 10") {
		t.Fatalf("open a rolled-back shared log: got %v, want ErrDamaged naming the key store's checkpoint", err)
	}
	// A new epoch starts an empty log; the old rows stay.
	next, err := st.NewEpoch(t.Context())
	if err != nil || next.Epoch() != 2 {
		t.Fatalf("new epoch: %v, %v", next, err)
	}
	if n, err := next.Size(t.Context()); err != nil || n != 0 {
		t.Fatalf("new epoch size %d, %v", n, err)
	}
	if n, _ := st.Size(t.Context()); n != 5 {
		t.Errorf("old epoch size %d, want 5 kept", n)
	}
}

func waitTree(t *testing.T, st *AuditLog, size uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := st.TreeSize(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tree stayed at %d, want %d", n, size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustJSON(ev lethe.AuditEvent) []byte {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkSharedAuditAppend measures committed appends of one event per
// call to the shared log, by 1 or 256 concurrent callers spread over one
// or two instances (each with its own pool), and reports appends/s and
// latency percentiles.
func BenchmarkSharedAuditAppend(b *testing.B) {
	for _, instances := range []int{1, 2} {
		for _, callers := range []int{1, 256} {
			if callers == 1 && instances == 2 {
				continue
			}
			b.Run(fmt.Sprintf("instances=%d/callers=%d", instances, callers), func(b *testing.B) {
				e := newSharedEnv(b)
				var logs []*audit.SharedLog
				for range instances {
					l, _ := e.instance(b)
					logs = append(logs, l)
				}
				ev := mustJSON(sharedEvent(0, 0, 0))
				per := b.N/callers + 1
				lat := make([][]time.Duration, callers)
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						l := logs[c%instances]
						ds := make([]time.Duration, 0, per)
						for range per {
							t0 := time.Now()
							if _, err := l.Append(context.Background(), ev); err != nil {
								b.Error(err)
								return
							}
							ds = append(ds, time.Since(t0))
						}
						lat[c] = ds
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				for _, l := range logs {
					l.Close()
				}
				all := slices.Concat(lat...)
				slices.Sort(all)
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}
