package vault_test

// In-process benchmarks of the vault service on the SQLite stores, the
// default deployment: what a lookup (find by email, then read) and a create
// cost without HTTP, TLS or the load generator, and what each store call
// and audit write inside them costs. bench/vault.sh measures the same two
// operations over HTTPS; docs/benchmarks.md ("Vault over HTTPS") holds the
// results and how to run these.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// benchSubjects is how many subjects the lookup benchmarks find and read,
// as many as bench/vault.sh seeds by default.
const benchSubjects = 10_000

// benchActor is the caller: a service key, as an app would use.
var benchActor = lethe.Actor{KeyID: "key_bench", Role: lethe.RoleService, RequestID: "req_bench"}

// discardAuditor accepts every event and keeps none: the vault without the
// cost of its audit log.
type discardAuditor struct{}

func (discardAuditor) Record(context.Context, ...lethe.AuditEvent) error { return nil }

// benchVault is a vault service on fresh SQLite stores in a temporary
// directory, with its stores and auditor.
type benchVault struct {
	v     *vault.Service
	store *sqlite.VaultStore
	keys  *sqlite.KeyStore
	dir   string
}

// newBenchVault opens the stores and the service. auditTo is "log" for the
// server's own audit log (durable, in audit/ in the directory) or "discard".
func newBenchVault(b *testing.B, auditTo string) *benchVault {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	data, err := sqlite.OpenData(ctx, filepath.Join(dir, "data.db"))
	if err != nil {
		b.Fatal(err)
	}
	keys, err := sqlite.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { data.Close(); keys.Close() })
	kms, _, err := vault.OpenLocalKMS(filepath.Join(dir, "master.key"), "")
	if err != nil {
		b.Fatal(err)
	}
	var auditor lethe.Auditor = discardAuditor{}
	if auditTo == "log" {
		auditor = audittest.Open(b, filepath.Join(dir, "audit"), sqlite.NewKeyStore(keys))
	}
	bv := &benchVault{store: sqlite.NewVaultStore(data), keys: sqlite.NewKeyStore(keys), dir: dir}
	bv.v, err = vault.New(ctx, vault.Config{Store: bv.store, Keys: bv.keys, KMS: kms, Audit: auditor})
	if err != nil {
		b.Fatal(err)
	}
	return bv
}

func benchEmail(prefix string, n int64) string { return fmt.Sprintf("%s%d@example.com", prefix, n) }

// newSubject is the subject bench/loadgen creates: one email and a name.
func newSubject(prefix string, n int64) lethe.NewSubject {
	return lethe.NewSubject{
		Identifiers: map[string]string{"email": benchEmail(prefix, n)},
		Profile:     json.RawMessage(fmt.Sprintf(`{"name":"N%d"}`, n)),
	}
}

// seed creates n subjects user0@example.com … from 64 goroutines, as
// bench/vault.sh does, and returns their IDs.
func (bv *benchVault) seed(b *testing.B, n int) []string {
	b.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				v, err := bv.v.CreateSubject(context.Background(), benchActor, newSubject("user", i))
				if err != nil {
					errs <- err
					return
				}
				ids[i] = v.ID
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return ids
}

// lookup is what POST /v1/subjects/lookup does.
func (bv *benchVault) lookup(ctx context.Context, n int64) error {
	_, err := bv.v.LookupSubject(ctx, benchActor, lethe.DefaultTenant, "email", benchEmail("user", n), lethe.ReadOptions{})
	return err
}

// BenchmarkVaultLookup finds a subject by email and reads it, cycling over
// the seeded subjects, with the audit log in a file as the server keeps it
// or discarded. The parallel sub-benchmarks run 64 goroutines, as many as
// bench/vault.sh's connections; their ns/op is wall time per lookup with
// both cores busy. Every subject key is in the service's cache, as it is
// in a server that created the subjects.
func BenchmarkVaultLookup(b *testing.B) {
	for _, auditTo := range []string{"log", "discard"} {
		bv := newBenchVault(b, auditTo)
		bv.seed(b, benchSubjects)
		ctx, cancel := context.WithCancel(context.Background()) // cancellable, as a request's is
		b.Cleanup(cancel)
		b.Run("audit="+auditTo, func(b *testing.B) {
			b.ReportAllocs()
			var n int64
			for b.Loop() {
				if err := bv.lookup(ctx, n%benchSubjects); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
		b.Run("audit="+auditTo+"/parallel=64", func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Int64
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bv.lookup(ctx, (next.Add(1)-1)%benchSubjects); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkVaultCreate creates subjects with unique emails, audit log in a
// file. Every create commits twice (the subject key in the key store, then
// the subject in the data store), each commit with an fsync of the WAL; the
// parallel sub-benchmark shows how far 64 concurrent callers get past that.
func BenchmarkVaultCreate(b *testing.B) {
	bv := newBenchVault(b, "log")
	var next atomic.Int64
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bv.v.CreateSubject(context.Background(), benchActor, newSubject("s", next.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel=64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := bv.v.CreateSubject(context.Background(), benchActor, newSubject("p", next.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkVaultStoreReads prices, one at a time, the store reads a lookup
// makes: the identifier's blind index to a subject ID, the latest profile
// version, the subject row (for its creation time), and the subject key,
// which a lookup reads from the key store only when the service's key
// cache misses.
func BenchmarkVaultStoreReads(b *testing.B) {
	bv := newBenchVault(b, "discard")
	ids := bv.seed(b, benchSubjects)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	index := make([][]byte, len(ids))
	for i, id := range ids {
		sealed, err := bv.store.Identifiers(ctx, lethe.DefaultTenant, id)
		if err != nil || len(sealed) != 1 {
			b.Fatalf("identifiers of %s: got %d, %v", id, len(sealed), err)
		}
		index[i] = sealed[0].Index
	}
	reads := []struct {
		name string
		read func(i int) error
	}{
		{"SubjectByIdentifier", func(i int) error {
			_, err := bv.store.SubjectByIdentifier(ctx, lethe.DefaultTenant, "email", index[i])
			return err
		}},
		{"LatestVersion", func(i int) error {
			_, err := bv.store.LatestVersion(ctx, lethe.DefaultTenant, ids[i])
			return err
		}},
		{"Subject", func(i int) error {
			_, err := bv.store.Subject(ctx, lethe.DefaultTenant, ids[i])
			return err
		}},
		{"KeyStore.SubjectKey", func(i int) error {
			_, err := bv.keys.SubjectKey(ctx, lethe.DefaultTenant, ids[i])
			return err
		}},
	}
	for _, r := range reads {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := r.read(i % len(ids)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkVaultStoreWrites prices, one at a time, the two commits of a
// create: the wrapped subject key into the key store, then the subject,
// its identifier and first version into the data store, each in its own
// transaction with an fsync. They run on each database's one write
// connection, so they bound how many creates per second one server makes.
func BenchmarkVaultStoreWrites(b *testing.B) {
	bv := newBenchVault(b, "discard")
	ctx := context.Background()
	random := func(n int) []byte {
		p := make([]byte, n)
		rand.Read(p)
		return p
	}
	// The first subject makes the tenant's key, which the subject keys
	// are wrapped under.
	if _, err := bv.v.CreateSubject(ctx, benchActor, lethe.NewSubject{Identifiers: map[string]string{"email": benchEmail("first", 0)}}); err != nil {
		b.Fatal(err)
	}
	b.Run("KeyStore.CreateSubjectKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k := &lethe.WrappedKey{Wrapped: random(60), KEKID: lethe.TenantKEKID(lethe.DefaultTenant, 1), CreatedAt: time.Now()}
			if err := bv.keys.CreateSubjectKey(ctx, lethe.DefaultTenant, vault.NewSubjectID(), k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VaultStore.CreateSubject", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			id, now := vault.NewSubjectID(), time.Now()
			ids := []lethe.SealedIdentifier{{Tenant: lethe.DefaultTenant, SubjectID: id, Kind: "email", Index: random(32), Sealed: random(50)}}
			first := &lethe.SealedVersion{Tenant: lethe.DefaultTenant, SubjectID: id, Version: 1, Sealed: random(120), Principal: benchActor.KeyID, CreatedAt: now}
			if err := bv.store.CreateSubject(ctx, &lethe.Subject{ID: id, Tenant: lethe.DefaultTenant, CreatedAt: now}, ids, first); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVaultDetokenize detokenizes one batch of 100 random tokens of 100
// subjects, as bench/vault.sh's detokenize set does over HTTPS; values/s is
// 100 × batches/s.
func BenchmarkVaultDetokenize(b *testing.B) {
	for _, auditTo := range []string{"log", "discard"} {
		b.Run("audit="+auditTo, func(b *testing.B) {
			bv := newBenchVault(b, auditTo)
			ctx := context.Background()
			var tokens []string
			for i := range 100 {
				s, err := bv.v.CreateSubject(ctx, benchActor, lethe.NewSubject{Identifiers: map[string]string{"email": benchEmail("detok", int64(i))}})
				if err != nil {
					b.Fatal(err)
				}
				v := benchEmail("detok", int64(i))
				toks, err := bv.v.Tokenize(ctx, benchActor, "", s.ID, []lethe.TokenRequest{{Field: "email", Value: &v}})
				if err != nil {
					b.Fatal(err)
				}
				tokens = append(tokens, toks[0].Token)
			}
			a := benchActor
			a.Purpose = "billing"
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bv.v.Detokenize(ctx, a, "", tokens); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(tokens))/b.Elapsed().Seconds(), "values/s")
		})
	}
}
