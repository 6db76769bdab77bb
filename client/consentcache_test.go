package client_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/consent"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

var purposes = []lethe.Purpose{
	{Key: "billing", Description: "Billing", Basis: lethe.BasisContract, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("a", 64)}},
	{Key: "newsletter", Description: "Newsletter", Basis: lethe.BasisConsent, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("b", 64)}},
	{Key: "research", Description: "Research", Basis: lethe.BasisConsent, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("c", 64)}},
	{Key: "analytics", Description: "Analytics", Basis: lethe.BasisLegitimateInterests, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("d", 64)}},
}

// server is a real API server over TLS on SQLite stores, and the ledger
// store behind it, to fill directly.
func server(b *testing.B) (*client.Client, lethe.ConsentStore) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	data, err := sqlite.OpenData(ctx, filepath.Join(dir, "data.db"))
	if err != nil {
		b.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { data.Close(); keysDB.Close() })
	keys := sqlite.NewKeyStore(keysDB)
	log := audittest.Open(b, filepath.Join(dir, "audit"), keys)
	store := sqlite.NewConsentStore(data)
	cs, err := consent.New(ctx, consent.Config{Store: store, Subjects: vault.Directory{Store: sqlite.NewVaultStore(data), Keys: keys},
		Audit: log, Purposes: purposes, ProofKey: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	apiKeys := sqlite.NewAPIKeyStore(data)
	srv := api.New(api.Options{Keys: apiKeys, Consent: cs, Audit: log, RateLimit: 1e9})
	k, secret, _ := lethe.NewAPIKey("bench", lethe.RoleService, time.Now(), nil)
	if err := apiKeys.CreateAPIKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	b.Cleanup(func() { srv.CloseStreams(); ts.Close() })
	c, err := client.New(client.Config{URL: ts.URL, APIKey: secret, HTTPClient: ts.Client()})
	if err != nil {
		b.Fatal(err)
	}
	return c, store
}

// BenchmarkConsentCache measures the Go client's in-process check after it
// has followed a ledger of n subjects (each consented to the newsletter,
// every other one to research): one hot subject, and random subjects ×
// the four purposes. The ledger is written to the store directly (the
// subjects need not exist in the vault for consent-based checks).
func BenchmarkConsentCache(b *testing.B) {
	const n = 1_000_000
	c, store := server(b)
	ctx := context.Background()
	ids := make([]string, n)
	var batch []lethe.ConsentEvent
	at := time.Now().UTC()
	for i := range ids {
		ids[i] = string(consent.BenchID(nil, i))
		batch = append(batch, lethe.ConsentEvent{Tenant: lethe.DefaultTenant, SubjectID: ids[i], Purpose: "newsletter", Kind: lethe.ConsentGrant,
			At: at, PolicyVersion: "1", TextHash: strings.Repeat("b", 64), Channel: "import", KeyID: "key_bench"})
		if i%2 == 0 {
			batch = append(batch, lethe.ConsentEvent{Tenant: lethe.DefaultTenant, SubjectID: ids[i], Purpose: "research", Kind: lethe.ConsentGrant,
				At: at, PolicyVersion: "1", TextHash: strings.Repeat("c", 64), Channel: "import", KeyID: "key_bench"})
		}
		if len(batch) >= lethe.ConsentEventsLimit-1 || i == n-1 {
			if _, err := store.AppendConsent(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	start := time.Now()
	cache, err := c.NewConsentCache(ctx, client.ConsentCacheConfig{MaxStaleness: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	b.Logf("the cache followed %d events (%d subjects) in %v", cache.Revision(), n, time.Since(start).Round(time.Millisecond))

	b.Run("hot", func(b *testing.B) {
		for b.Loop() {
			if ok, err := cache.Allowed(ctx, ids[7], "newsletter"); !ok || err != nil {
				b.Fatal("denied", err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
	// The batch check over HTTPS: 100,000 random subjects filtered for a
	// consent purpose, request encoded, sent, decided and the answer
	// decoded.
	b.Run("http-batch-100k", func(b *testing.B) {
		r := rand.New(rand.NewPCG(7, 8))
		batch := make([]string, 100_000)
		for i := range batch {
			batch[i] = ids[r.IntN(n)]
		}
		for b.Loop() {
			d, err := c.CheckConsentBatch(ctx, "research", batch, 0)
			if err != nil || len(d.Allowed)+len(d.Denied) != len(batch) {
				b.Fatal("batch", err, len(d.Allowed), len(d.Denied))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/batch")
	})
	// Random IDs are formatted into a buffer, as an ID arrives in a
	// request (see consent.BenchID). billing and analytics need no
	// consent; for subjects with no event of theirs the cache would ask
	// the server once; every subject here has one.
	b.Run("random-1M-subjects-4-purposes", func(b *testing.B) {
		r := rand.New(rand.NewPCG(5, 6))
		id := make([]byte, 0, 32)
		for b.Loop() {
			id = consent.BenchID(id, r.IntN(n))
			cache.Check(ctx, string(id), purposes[r.IntN(4)].Key)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
	b.Run("random-1M-subjects-4-purposes-parallel", func(b *testing.B) {
		var seed atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(seed.Add(1), 6))
			id := make([]byte, 0, 32)
			for pb.Next() {
				id = consent.BenchID(id, r.IntN(n))
				cache.Check(ctx, string(id), purposes[r.IntN(4)].Key)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
}
