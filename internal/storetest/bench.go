package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lethe-privacy/lethe"
)

// benchSubjects is how many subjects the benchmarks store before reading.
const benchSubjects = 256

// BenchmarkVaultStore measures s, a store on an empty database, on the paths
// every API request takes: finding a subject by an identifier and reading
// its current version, from parallel goroutines (run with -cpu to vary
// them). CreateSubject measures the write of a new subject, AppendVersion
// a rectification: a new profile version that also changes the email, each
// goroutine on a subject of its own.
func BenchmarkVaultStore(b *testing.B, s lethe.VaultStore) {
	ctx := b.Context()
	for i := range benchSubjects {
		sub, ids, first := newSubject("acme", fmt.Sprintf("sub_%04d", i), lethe.KindEmail)
		if err := s.CreateSubject(ctx, sub, ids, first); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("SubjectByIdentifier", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				id := fmt.Sprintf("sub_%04d", i%benchSubjects)
				if _, err := s.SubjectByIdentifier(ctx, "acme", lethe.KindEmail, index("acme", id, lethe.KindEmail)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("LatestVersion", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := s.LatestVersion(ctx, "acme", fmt.Sprintf("sub_%04d", i%benchSubjects)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	var next atomic.Int64
	b.Run("CreateSubject", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sub, ids, first := newSubject("acme", fmt.Sprintf("sub_new_%d", next.Add(1)), lethe.KindEmail, lethe.KindPhone)
				if err := s.CreateSubject(ctx, sub, ids, first); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("AppendVersion", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			id := fmt.Sprintf("sub_append_%d", next.Add(1))
			sub, ids, first := newSubject("acme", id, lethe.KindEmail, lethe.KindPhone)
			if err := s.CreateSubject(ctx, sub, ids, first); err != nil {
				b.Error(err)
				return
			}
			for n := 2; pb.Next(); n++ {
				email := lethe.SealedIdentifier{Tenant: "acme", SubjectID: id, Kind: lethe.KindEmail,
					Index: index(id, fmt.Sprint(n)), Sealed: sealed(id, fmt.Sprint(n))}
				if err := s.AppendVersion(ctx, newVersion("acme", id, n), []lethe.SealedIdentifier{email}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkKeyStore measures s, a store on an empty database, on reading a
// subject's key from parallel goroutines, the key-store read of every
// request that decrypts.
func BenchmarkKeyStore(b *testing.B, s lethe.KeyStore) {
	ctx := b.Context()
	if err := s.CreateTenantKey(ctx, "acme", newWrappedKey("acme")); err != nil {
		b.Fatal(err)
	}
	for i := range benchSubjects {
		id := fmt.Sprintf("sub_%04d", i)
		if err := s.CreateSubjectKey(ctx, "acme", id, newSubjectKey("acme", id, 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("SubjectKey", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := s.SubjectKey(ctx, "acme", fmt.Sprintf("sub_%04d", i%benchSubjects)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
