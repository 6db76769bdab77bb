package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
)

// RewrapKeyStore is a key store with the lethe.KeyRewrapper capability.
type RewrapKeyStore = interface {
	lethe.KeyStore
	lethe.KeyRewrapper
}

// TestKeyRewrapper runs the lethe.KeyRewrapper contract against stores that
// newStore returns; each call must return one on a fresh key store.
func TestKeyRewrapper(t *testing.T, newStore func(t *testing.T) RewrapKeyStore) {
	// fill stores secrets and tenant key versions under the master keys
	// "old", "older" and "new" (globex has three versions, rotated twice,
	// each wrapped under its own master key), subject keys (which no
	// rewrap touches) and an erased tenant, and returns the keys not under
	// "new" in listing order.
	fill := func(t *testing.T, s RewrapKeyStore) []lethe.StaleKey {
		t.Helper()
		rotator, ok := s.(lethe.TenantKeyRotator)
		if !ok {
			t.Fatalf("%T does not implement lethe.TenantKeyRotator", s)
		}
		var stale []lethe.StaleKey
		for _, k := range []struct {
			kind, name string
			version    int
			kek        string
		}{
			{lethe.StaleSecret, "blind-index-root", 0, "old"},
			{lethe.StaleSecret, "token-root", 0, "new"},
			{lethe.StaleSecret, "zz-later", 0, "older"},
			{lethe.StaleTenantKey, "a_z", 1, "old"}, // before "acme" byte by byte, not in a natural-language collation
			{lethe.StaleTenantKey, "acme", 1, "old"},
			{lethe.StaleTenantKey, "acme-2", 1, "new"},
			{lethe.StaleTenantKey, "globex", 1, "older"},
			{lethe.StaleTenantKey, "globex", 2, "new"},
			{lethe.StaleTenantKey, "globex", 3, "old"},
		} {
			w := masterWrappedKey(k.name, k.version, k.kek)
			var err error
			switch {
			case k.kind == lethe.StaleSecret:
				err = s.CreateSecret(t.Context(), k.name, w)
			case k.version == 1:
				err = s.CreateTenantKey(t.Context(), k.name, w)
			default:
				err = rotator.AddTenantKeyVersion(t.Context(), k.name, w)
			}
			if err != nil {
				t.Fatalf("create %s %s v%d: %v", k.kind, k.name, k.version, err)
			}
			if k.kek != "new" {
				stale = append(stale, lethe.StaleKey{Kind: k.kind, Name: k.name, Version: k.version, Wrapped: w.Wrapped, KEKID: k.kek})
			}
		}
		// Subject keys are wrapped by their tenant's key: never listed.
		createSubjectKey(t, s, "acme", "sub_1")
		createSubjectKey(t, s, "globex", "sub_1")
		// An erased tenant has no key left to list.
		if err := s.CreateTenantKey(t.Context(), "erased", masterWrappedKey("erased", 1, "old")); err != nil {
			t.Fatal(err)
		}
		if err := s.DestroyTenantKey(t.Context(), "erased", base); err != nil {
			t.Fatal(err)
		}
		return stale
	}

	t.Run("empty store", func(t *testing.T) {
		s := newStore(t)
		n, err := s.CountStaleWrappedKeys(t.Context(), "new")
		if err != nil || n != 0 {
			t.Fatalf("count: got %v, %v, want 0, <nil>", n, err)
		}
		got, err := s.StaleWrappedKeys(t.Context(), "new", lethe.StaleKey{}, 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("list: got %v, %v, want none", got, err)
		}
	})

	t.Run("count and list", func(t *testing.T) {
		s := newStore(t)
		want := fill(t, s)
		n, err := s.CountStaleWrappedKeys(t.Context(), "new")
		if err != nil || n != len(want) {
			t.Fatalf("count: got %v, %v, want %v, <nil>", n, err, len(want))
		}
		got, err := s.StaleWrappedKeys(t.Context(), "new", lethe.StaleKey{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !equalStaleKeys(got, want) {
			t.Errorf("list: got %v, want %v", got, want)
		}
		// Every key is stale for a master key nothing is wrapped under.
		if n, err := s.CountStaleWrappedKeys(t.Context(), "unused"); err != nil || n != 9 {
			t.Errorf("count for an unused key: got %v, %v, want 9, <nil>", n, err)
		}
		for _, limit := range []int{0, -1} {
			if got, err := s.StaleWrappedKeys(t.Context(), "new", lethe.StaleKey{}, limit); err != nil || len(got) != 0 {
				t.Errorf("limit %d: got %v, %v, want none", limit, got, err)
			}
		}
	})

	t.Run("pages", func(t *testing.T) {
		s := newStore(t)
		want := fill(t, s)
		for _, size := range []int{1, 2, 3, len(want), len(want) + 1} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				var got []lethe.StaleKey
				var after lethe.StaleKey
				for range len(want) + 2 {
					page, err := s.StaleWrappedKeys(t.Context(), "new", after, size)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > size {
						t.Fatalf("page: got %d keys, want at most %d", len(page), size)
					}
					if len(page) == 0 {
						break
					}
					got = append(got, page...)
					after = page[len(page)-1]
				}
				if !equalStaleKeys(got, want) {
					t.Errorf("pages: got %v, want %v", got, want)
				}
			})
		}
		// A cursor needs only kind, name and version, and need not be a
		// stored key.
		for _, c := range []struct {
			name  string
			after lethe.StaleKey
			want  []lethe.StaleKey
		}{
			{"within secrets", lethe.StaleKey{Kind: lethe.StaleSecret, Name: "m"}, want[1:]},
			{"past secrets", lethe.StaleKey{Kind: lethe.StaleSecret, Name: "~"}, want[2:]},
			{"before a tenant's first version", lethe.StaleKey{Kind: lethe.StaleTenantKey, Name: "acme"}, want[3:]},
			{"within tenants", lethe.StaleKey{Kind: lethe.StaleTenantKey, Name: "acme", Version: 1}, want[4:]},
			{"between versions", lethe.StaleKey{Kind: lethe.StaleTenantKey, Name: "globex", Version: 2}, want[5:]},
			{"past the end", lethe.StaleKey{Kind: "zzz"}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := s.StaleWrappedKeys(t.Context(), "new", c.after, 100)
				if err != nil {
					t.Fatal(err)
				}
				if !equalStaleKeys(got, c.want) {
					t.Errorf("after %+v: got %v, want %v", c.after, got, c.want)
				}
			})
		}
	})

	t.Run("rewrap", func(t *testing.T) {
		s := newStore(t)
		stale := fill(t, s)
		for _, k := range stale {
			nw := sealed("rewrapped", k.Kind, k.Name, fmt.Sprint(k.Version))
			if err := s.RewrapKey(t.Context(), k, nw, "new"); err != nil {
				t.Fatalf("rewrap %s %s: %v", k.Kind, k.Name, err)
			}
			want := &lethe.WrappedKey{Wrapped: nw, KEKID: "new", CreatedAt: base}
			checkMasterWrapped(t, s, k, want)
			// The same rewrap again finds the key changed, and changes
			// nothing.
			err := s.RewrapKey(t.Context(), k, sealed("again"), "newer")
			wantCode(t, err, lethe.ECONFLICT)
			checkMasterWrapped(t, s, k, want)
		}
		if n, err := s.CountStaleWrappedKeys(t.Context(), "new"); err != nil || n != 0 {
			t.Errorf("count after rewrapping all: got %v, %v, want 0, <nil>", n, err)
		}
		if got, err := s.StaleWrappedKeys(t.Context(), "new", lethe.StaleKey{}, 100); err != nil || len(got) != 0 {
			t.Errorf("list after rewrapping all: got %v, %v, want none", got, err)
		}
		// Subject keys are untouched.
		checkSubjectKey(t, s, "acme", "sub_1", newSubjectKey("acme", "sub_1", 1))
		checkSubjectKey(t, s, "globex", "sub_1", newSubjectKey("globex", "sub_1", 3))
	})

	t.Run("compare and swap", func(t *testing.T) {
		s := newStore(t)
		stale := fill(t, s)
		k := stale[0]
		before := &lethe.WrappedKey{Wrapped: k.Wrapped, KEKID: k.KEKID, CreatedAt: base}
		for _, c := range []struct {
			name string
			k    lethe.StaleKey
		}{
			{"other bytes", lethe.StaleKey{Kind: k.Kind, Name: k.Name, Wrapped: sealed("other"), KEKID: k.KEKID}},
			{"other kek", lethe.StaleKey{Kind: k.Kind, Name: k.Name, Wrapped: k.Wrapped, KEKID: "older"}},
			{"no bytes", lethe.StaleKey{Kind: k.Kind, Name: k.Name, KEKID: k.KEKID}},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := s.RewrapKey(t.Context(), c.k, sealed("new"), "new")
				wantCode(t, err, lethe.ECONFLICT)
				checkMasterWrapped(t, s, k, before)
			})
		}
		t.Run("another version", func(t *testing.T) {
			// Version 3's bytes and key ID, named as version 2 (which is
			// under "new"): neither version changes.
			v3 := stale[len(stale)-1]
			v2 := lethe.StaleKey{Kind: lethe.StaleTenantKey, Name: "globex", Version: 2, Wrapped: v3.Wrapped, KEKID: v3.KEKID}
			wantCode(t, s.RewrapKey(t.Context(), v2, sealed("new"), "new"), lethe.ECONFLICT)
			checkMasterWrapped(t, s, v2, masterWrappedKey("globex", 2, "new"))
			checkMasterWrapped(t, s, v3, &lethe.WrappedKey{Wrapped: v3.Wrapped, KEKID: v3.KEKID, CreatedAt: base})
		})
	})

	t.Run("gone or unknown", func(t *testing.T) {
		s := newStore(t)
		stale := fill(t, s)
		var acme lethe.StaleKey
		for _, k := range stale {
			if k.Kind == lethe.StaleTenantKey && k.Name == "acme" {
				acme = k
			}
		}
		if err := s.DestroyTenantKey(t.Context(), "acme", base); err != nil {
			t.Fatal(err)
		}
		err := s.RewrapKey(t.Context(), acme, sealed("new"), "new")
		wantCode(t, err, lethe.ENOTFOUND)
		_, err = s.TenantKey(t.Context(), "acme")
		wantCode(t, err, lethe.EGONE)

		// Versions deleted after a tenant-key rotation are gone too, and
		// a version that was never made is not found.
		globexV1 := stale[len(stale)-2]
		if n, err := s.(lethe.TenantKeyRotator).DeleteTenantKeysBefore(t.Context(), "globex", 3); err != nil || n != 2 {
			t.Fatalf("delete globex's versions before 3: got %v, %v, want 2, <nil>", n, err)
		}
		wantCode(t, s.RewrapKey(t.Context(), globexV1, sealed("new"), "new"), lethe.ENOTFOUND)
		never := lethe.StaleKey{Kind: lethe.StaleTenantKey, Name: "globex", Version: 4, Wrapped: globexV1.Wrapped, KEKID: "older"}
		wantCode(t, s.RewrapKey(t.Context(), never, sealed("new"), "new"), lethe.ENOTFOUND)

		missing := lethe.StaleKey{Kind: lethe.StaleSecret, Name: "missing", Wrapped: sealed("x"), KEKID: "old"}
		wantCode(t, s.RewrapKey(t.Context(), missing, sealed("new"), "new"), lethe.ENOTFOUND)
		_, err = s.Secret(t.Context(), "missing")
		wantCode(t, err, lethe.ENOTFOUND)

		for _, kind := range []string{"", "subject", "tenants"} {
			k := stale[0]
			k.Kind = kind
			wantCode(t, s.RewrapKey(t.Context(), k, sealed("new"), "new"), lethe.EINVALID)
		}
		if n, err := s.CountStaleWrappedKeys(t.Context(), "new"); err != nil || n != len(stale)-2 {
			t.Errorf("count: got %v, %v, want %v, <nil>", n, err, len(stale)-2)
		}
	})

	t.Run("concurrent rewraps", func(t *testing.T) {
		// Rewrappers racing for one key: exactly one wins, and the key
		// holds what it wrote.
		s := newStore(t)
		stale := fill(t, s)
		const n = 16
		for _, k := range []lethe.StaleKey{stale[0], stale[len(stale)-1]} {
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = s.RewrapKey(t.Context(), k, sealed("race", fmt.Sprint(i)), fmt.Sprint("new-", i)) })
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch lethe.ErrorCode(err) {
				case "":
					if winner >= 0 {
						t.Errorf("%s %s: rewraps %d and %d both won", k.Kind, k.Name, winner, i)
					}
					winner = i
				case lethe.ECONFLICT:
				default:
					t.Errorf("rewrap %d: got %v, want <nil> or a conflict", i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("%s %s: no rewrap won", k.Kind, k.Name)
			}
			checkMasterWrapped(t, s, k, &lethe.WrappedKey{Wrapped: sealed("race", fmt.Sprint(winner)), KEKID: fmt.Sprint("new-", winner), CreatedAt: base})
		}
	})
}

// masterWrappedKey returns the given version (0 for a secret) of a key
// named name, wrapped under the master key kek, created at base.
func masterWrappedKey(name string, version int, kek string) *lethe.WrappedKey {
	return &lethe.WrappedKey{Wrapped: sealed("master-wrapped", name, fmt.Sprint(version), kek), KEKID: kek, Version: version, CreatedAt: base}
}

// checkMasterWrapped checks the stored secret or tenant key version k
// names; want's Version is taken from k.
func checkMasterWrapped(t *testing.T, s lethe.KeyStore, k lethe.StaleKey, want *lethe.WrappedKey) {
	t.Helper()
	var got *lethe.WrappedKey
	var err error
	if k.Kind == lethe.StaleSecret {
		got, err = s.Secret(t.Context(), k.Name)
	} else {
		got, err = s.TenantKeyVersion(t.Context(), k.Name, k.Version)
	}
	if err != nil {
		t.Fatalf("%s %s v%d: %v", k.Kind, k.Name, k.Version, err)
	}
	w := *want
	w.Version = k.Version
	checkWrappedKey(t, fmt.Sprintf("%s %s v%d", k.Kind, k.Name, k.Version), got, &w)
}

// equalStaleKeys reports whether a and b hold the same keys in the same
// order; nil and empty are equal.
func equalStaleKeys(a, b []lethe.StaleKey) bool {
	return slices.EqualFunc(a, b, func(x, y lethe.StaleKey) bool {
		return x.Kind == y.Kind && x.Name == y.Name && x.Version == y.Version && x.KEKID == y.KEKID && bytes.Equal(x.Wrapped, y.Wrapped)
	})
}
