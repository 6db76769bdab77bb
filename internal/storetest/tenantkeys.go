package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TenantRotatorKeyStore is a key store with the lethe.TenantKeyRotator
// capability.
type TenantRotatorKeyStore = interface {
	lethe.KeyStore
	lethe.TenantKeyRotator
}

// TestTenantKeyRotator runs the lethe.TenantKeyRotator contract, with the
// version rules of lethe.KeyStore it relies on, against stores that
// newStore returns; each call must return one on a fresh key store.
func TestTenantKeyRotator(t *testing.T, newStore func(t *testing.T) TenantRotatorKeyStore) {
	t.Run("versions", func(t *testing.T) {
		s := newStore(t)
		_, err := s.TenantKeyVersion(t.Context(), "acme", 1)
		wantCode(t, err, lethe.ENOTFOUND)
		wantCode(t, s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 2)), lethe.ENOTFOUND)

		v1 := tenantKeyVersion("acme", 1)
		v1.Version = 0 // ignored: the first key is version 1
		if err := s.CreateTenantKey(t.Context(), "acme", v1); err != nil {
			t.Fatal(err)
		}
		checkTenantKey(t, s, "acme", tenantKeyVersion("acme", 1))
		checkTenantKeyVersion(t, s, "acme", tenantKeyVersion("acme", 1))
		_, err = s.TenantKeyVersion(t.Context(), "acme", 2)
		wantCode(t, err, lethe.ENOTFOUND)

		for _, v := range []int{2, 3} {
			if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", v)); err != nil {
				t.Fatalf("add version %d: %v", v, err)
			}
			checkTenantKey(t, s, "acme", tenantKeyVersion("acme", v))
		}
		for v := 1; v <= 3; v++ {
			checkTenantKeyVersion(t, s, "acme", tenantKeyVersion("acme", v))
		}

		for _, c := range []struct {
			name    string
			version int
			code    string
		}{
			{"the current version again", 3, lethe.ECONFLICT},
			{"an older version again", 2, lethe.ECONFLICT},
			{"a version skipping one", 5, lethe.ECONFLICT},
			{"version 1", 1, lethe.EINVALID},
			{"version 0", 0, lethe.EINVALID},
		} {
			t.Run(c.name, func(t *testing.T) {
				k := tenantKeyVersion("acme", 9)
				k.Version = c.version
				wantCode(t, s.AddTenantKeyVersion(t.Context(), "acme", k), c.code)
				checkTenantKey(t, s, "acme", tenantKeyVersion("acme", 3))
			})
		}
		// A tenant with versions still has a key: no second first key.
		wantCode(t, s.CreateTenantKey(t.Context(), "acme", newWrappedKey("acme again")), lethe.ECONFLICT)
		checkTenantKey(t, s, "acme", tenantKeyVersion("acme", 3))
		// Versions are per tenant.
		createSubjectKey(t, s, "globex", "sub_1")
		checkTenantKey(t, s, "globex", newWrappedKey("globex"))
	})

	t.Run("subject keys only under the current version", func(t *testing.T) {
		// The safety rule of a rotation: once version 2 exists, no subject
		// key can be stored under version 1, which the rotation deletes.
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_v1")
		legacy := &lethe.WrappedKey{Wrapped: sealed("key", "legacy"), KEKID: "tenant:acme", CreatedAt: base}
		if err := s.CreateSubjectKey(t.Context(), "acme", "sub_legacy", legacy); err != nil {
			t.Fatalf("the form from before versions, under version 1: %v", err)
		}
		checkSubjectKey(t, s, "acme", "sub_legacy", legacy)
		if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 2)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name  string
			kekID string
		}{
			{"version 1", lethe.TenantKEKID("acme", 1)},
			{"version 1, the form from before versions", "tenant:acme"},
			{"a version not made yet", lethe.TenantKEKID("acme", 3)},
		} {
			t.Run(c.name, func(t *testing.T) {
				k := &lethe.WrappedKey{Wrapped: sealed("key", c.name), KEKID: c.kekID, CreatedAt: base}
				err := s.CreateSubjectKey(t.Context(), "acme", "sub_new", k)
				wantCode(t, err, lethe.ECONFLICT)
				if !errors.Is(err, lethe.ErrStaleTenantKey) {
					t.Errorf("got %v, want lethe.ErrStaleTenantKey", err)
				}
				_, err = s.SubjectKey(t.Context(), "acme", "sub_new")
				wantCode(t, err, lethe.ENOTFOUND)
			})
		}
		for _, c := range []struct {
			name  string
			kekID string
		}{
			{"another tenant's key", lethe.TenantKEKID("globex", 2)},
			{"no tenant key", "local-0123456789abcdef"},
			{"no version", "tenant:acme:v"},
			{"version 0", "tenant:acme:v0"},
			{"leading zero", "tenant:acme:v02"},
			{"empty", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := s.CreateSubjectKey(t.Context(), "acme", "sub_new", &lethe.WrappedKey{Wrapped: sealed("key", c.name), KEKID: c.kekID, CreatedAt: base})
				wantCode(t, err, lethe.EINVALID)
			})
		}
		createSubjectKey(t, s, "acme", "sub_v2")
		checkSubjectKey(t, s, "acme", "sub_v2", newSubjectKey("acme", "sub_v2", 2))
		// The keys stored before the new version stay as they are.
		checkSubjectKey(t, s, "acme", "sub_v1", newSubjectKey("acme", "sub_v1", 1))

		// A tenant with no key yet has no current version.
		err := s.CreateSubjectKey(t.Context(), "initech", "sub_1", newSubjectKey("initech", "sub_1", 1))
		if !errors.Is(err, lethe.ErrStaleTenantKey) {
			t.Errorf("a tenant with no key: got %v, want lethe.ErrStaleTenantKey", err)
		}
		// Erasure comes first.
		destroy(t, s, lethe.Forgotten{Tenant: "acme", SubjectID: "sub_gone", ErasedAt: base})
		for _, v := range []int{1, 2} {
			err := s.CreateSubjectKey(t.Context(), "acme", "sub_gone", newSubjectKey("acme", "sub_gone", v))
			wantCode(t, err, lethe.EGONE)
		}
	})

	t.Run("stale subject keys", func(t *testing.T) {
		s := newStore(t)
		var want []lethe.StaleSubjectKey
		for _, id := range []string{"sub_c", "sub_a", "sub_B", "sub_e"} { // sub_B before sub_a byte by byte
			k := createSubjectKey(t, s, "acme", id)
			want = append(want, lethe.StaleSubjectKey{SubjectID: id, Wrapped: k.Wrapped, KEKID: k.KEKID})
		}
		legacy := &lethe.WrappedKey{Wrapped: sealed("key", "legacy"), KEKID: "tenant:acme", CreatedAt: base}
		if err := s.CreateSubjectKey(t.Context(), "acme", "sub_d", legacy); err != nil {
			t.Fatal(err)
		}
		want = append(want, lethe.StaleSubjectKey{SubjectID: "sub_d", Wrapped: legacy.Wrapped, KEKID: legacy.KEKID})
		slices.SortFunc(want, func(a, b lethe.StaleSubjectKey) int { return strings.Compare(a.SubjectID, b.SubjectID) })
		createSubjectKey(t, s, "globex", "sub_a") // another tenant's: never listed
		destroy(t, s, lethe.Forgotten{Tenant: "acme", SubjectID: "sub_e", ErasedAt: base})
		want = slices.DeleteFunc(want, func(k lethe.StaleSubjectKey) bool { return k.SubjectID == "sub_e" })

		// Under version 1, every key is under the current version.
		checkStaleSubjectKeys(t, s, "acme", 1, nil)
		if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 2)); err != nil {
			t.Fatal(err)
		}
		createSubjectKey(t, s, "acme", "sub_b2") // under version 2: not stale
		checkStaleSubjectKeys(t, s, "acme", 2, want)
		// Against a version nothing is under, every key is listed.
		n, err := s.CountStaleSubjectKeys(t.Context(), "acme", 7)
		if err != nil || n != len(want)+1 {
			t.Errorf("count against version 7: got %v, %v, want %v", n, err, len(want)+1)
		}
		checkStaleSubjectKeys(t, s, "initech", 1, nil)

		for _, size := range []int{1, 2, len(want), len(want) + 1} {
			t.Run(fmt.Sprint("pages of ", size), func(t *testing.T) {
				var got []lethe.StaleSubjectKey
				after := ""
				for range len(want) + 2 {
					page, err := s.StaleSubjectKeys(t.Context(), "acme", 2, after, size)
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
					after = page[len(page)-1].SubjectID
				}
				checkStaleSubjectKeyList(t, got, want)
			})
		}
		for _, c := range []struct {
			name  string
			after string
			limit int
			want  []lethe.StaleSubjectKey
		}{
			{"after an ID not stored", "sub_b", 10, want[2:]},
			{"after the last", "sub_z", 10, nil},
			{"limit 0", "", 0, nil},
			{"negative limit", "", -1, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := s.StaleSubjectKeys(t.Context(), "acme", 2, c.after, c.limit)
				if err != nil {
					t.Fatal(err)
				}
				checkStaleSubjectKeyList(t, got, c.want)
			})
		}
	})

	t.Run("rewrap", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"sub_1", "sub_2", "sub_3", "sub_gone"} {
			createSubjectKey(t, s, "acme", id)
		}
		if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 2)); err != nil {
			t.Fatal(err)
		}
		stale := staleSubjectKeys(t, s, "acme", 2)
		destroy(t, s, lethe.Forgotten{Tenant: "acme", SubjectID: "sub_gone", ErasedAt: base})
		rewraps := rewrapsOf(stale, "v2")

		// To a version that is not current: nothing changes.
		for _, version := range []int{1, 3} {
			_, err := s.RewrapSubjectKeys(t.Context(), "acme", version, rewraps)
			if !errors.Is(err, lethe.ErrStaleTenantKey) {
				t.Errorf("rewrap under version %d: got %v, want lethe.ErrStaleTenantKey", version, err)
			}
		}
		checkStaleSubjectKeys(t, s, "acme", 2, stale[:3])

		// sub_2 changed meanwhile; sub_gone was erased.
		changed := rewraps[1]
		changed.NewWrapped = sealed("changed")
		if res, err := s.RewrapSubjectKeys(t.Context(), "acme", 2, []lethe.SubjectKeyRewrap{changed}); err != nil || len(res) != 1 || res[0] != nil {
			t.Fatalf("rewrap sub_2 alone: got %v, %v", res, err)
		}
		res, err := s.RewrapSubjectKeys(t.Context(), "acme", 2, rewraps)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != len(rewraps) {
			t.Fatalf("results: got %d, want %d", len(res), len(rewraps))
		}
		for i, code := range []string{"", lethe.ECONFLICT, "", lethe.ENOTFOUND} {
			if got := lethe.ErrorCode(res[i]); got != code {
				t.Errorf("result for %s: got %v, want code %q", rewraps[i].Old.SubjectID, res[i], code)
			}
		}
		for i, id := range []string{"sub_1", "sub_2", "sub_3"} {
			want := &lethe.WrappedKey{Wrapped: rewraps[i].NewWrapped, KEKID: lethe.TenantKEKID("acme", 2), CreatedAt: base}
			if id == "sub_2" {
				want.Wrapped = changed.NewWrapped
			}
			checkSubjectKey(t, s, "acme", id, want)
		}
		_, err = s.SubjectKey(t.Context(), "acme", "sub_gone")
		wantCode(t, err, lethe.EGONE)
		checkStaleSubjectKeys(t, s, "acme", 2, nil)

		// The same rewraps again find every key changed.
		res, err = s.RewrapSubjectKeys(t.Context(), "acme", 2, rewraps[:3])
		if err != nil {
			t.Fatal(err)
		}
		for i := range res {
			if lethe.ErrorCode(res[i]) != lethe.ECONFLICT {
				t.Errorf("again, %s: got %v, want a conflict", rewraps[i].Old.SubjectID, res[i])
			}
		}
		if res, err := s.RewrapSubjectKeys(t.Context(), "acme", 2, nil); err != nil || len(res) != 0 {
			t.Errorf("no rewraps: got %v, %v, want none", res, err)
		}
		for _, bad := range [][]lethe.SubjectKeyRewrap{
			{rewraps[0], rewraps[0]},
			{{Old: lethe.StaleSubjectKey{KEKID: "tenant:acme:v1"}, NewWrapped: sealed("x")}},
		} {
			_, err := s.RewrapSubjectKeys(t.Context(), "acme", 2, bad)
			wantCode(t, err, lethe.EINVALID)
		}
		_, err = s.RewrapSubjectKeys(t.Context(), "initech", 1, rewraps)
		wantCode(t, err, lethe.ENOTFOUND)
		destroy(t, s, lethe.Forgotten{Tenant: "acme", ErasedAt: base})
		_, err = s.RewrapSubjectKeys(t.Context(), "acme", 2, rewraps)
		wantCode(t, err, lethe.EGONE)
	})

	t.Run("delete older versions", func(t *testing.T) {
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_1")
		legacy := &lethe.WrappedKey{Wrapped: sealed("key", "legacy"), KEKID: "tenant:acme", CreatedAt: base}
		if err := s.CreateSubjectKey(t.Context(), "acme", "sub_legacy", legacy); err != nil {
			t.Fatal(err)
		}
		createSubjectKey(t, s, "globex", "sub_1")
		if n, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 1); err != nil || n != 0 {
			t.Errorf("delete before the first version: got %v, %v, want 0, <nil>", n, err)
		}
		for _, v := range []int{2, 3} {
			if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", v)); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 4)
		wantCode(t, err, lethe.ENOTFOUND)
		_, err = s.DeleteTenantKeysBefore(t.Context(), "initech", 1)
		wantCode(t, err, lethe.ENOTFOUND)

		// Subject keys under version 1, in both forms, hold it and every
		// version after it back, one after the other.
		stale := staleSubjectKeys(t, s, "acme", 3)
		for i := range stale {
			_, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 3)
			wantCode(t, err, lethe.ECONFLICT)
			first := newWrappedKey("acme") // made by createSubjectKey
			first.Version = 1
			checkTenantKeyVersion(t, s, "acme", first)
			for v := 2; v <= 3; v++ {
				checkTenantKeyVersion(t, s, "acme", tenantKeyVersion("acme", v))
			}
			res, err := s.RewrapSubjectKeys(t.Context(), "acme", 3, rewrapsOf(stale[i:i+1], "v3"))
			if err != nil || res[0] != nil {
				t.Fatalf("rewrap %s: got %v, %v", stale[i].SubjectID, res, err)
			}
		}
		// Deleting before an older version needs no rewrap of the keys
		// under the ones after it.
		if n, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 2); err != nil || n != 1 {
			t.Fatalf("delete before 2: got %v, %v, want 1, <nil>", n, err)
		}
		if n, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 3); err != nil || n != 1 {
			t.Fatalf("delete before 3: got %v, %v, want 1, <nil>", n, err)
		}
		for _, v := range []int{1, 2} {
			_, err := s.TenantKeyVersion(t.Context(), "acme", v)
			wantCode(t, err, lethe.ENOTFOUND)
		}
		checkTenantKey(t, s, "acme", tenantKeyVersion("acme", 3))
		if n, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 3); err != nil || n != 0 {
			t.Errorf("delete again: got %v, %v, want 0, <nil>", n, err)
		}
		// A version is never made again, and the tenant has a key, so no
		// first key either.
		wantCode(t, s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 2)), lethe.ECONFLICT)
		wantCode(t, s.CreateTenantKey(t.Context(), "acme", newWrappedKey("acme")), lethe.ECONFLICT)
		checkTenantKey(t, s, "globex", newWrappedKey("globex"))
		checkSubjectKey(t, s, "globex", "sub_1", newSubjectKey("globex", "sub_1", 1))
	})

	t.Run("tenant erasure deletes every version", func(t *testing.T) {
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_1")
		for _, v := range []int{2, 3} {
			if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", v)); err != nil {
				t.Fatal(err)
			}
			createSubjectKey(t, s, "acme", fmt.Sprint("sub_", v))
		}
		createSubjectKey(t, s, "globex", "sub_1")
		destroy(t, s, lethe.Forgotten{Tenant: "acme", ErasedAt: base})
		_, err := s.TenantKey(t.Context(), "acme")
		wantCode(t, err, lethe.EGONE)
		for v := 1; v <= 4; v++ {
			_, err := s.TenantKeyVersion(t.Context(), "acme", v)
			wantCode(t, err, lethe.EGONE)
		}
		wantCode(t, s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 4)), lethe.EGONE)
		_, err = s.DeleteTenantKeysBefore(t.Context(), "acme", 3)
		wantCode(t, err, lethe.EGONE)
		checkStaleSubjectKeys(t, s, "acme", 1, nil)
		wantCode(t, s.CreateSubjectKey(t.Context(), "acme", "sub_4", newSubjectKey("acme", "sub_4", 3)), lethe.EGONE)
		checkTenantKey(t, s, "globex", newWrappedKey("globex"))
	})

	t.Run("concurrent rotations", func(t *testing.T) {
		// Rotations racing to add the same version: exactly one wins.
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_1")
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k := tenantKeyVersion("acme", 2)
				k.Wrapped = sealed("race", fmt.Sprint(i))
				errs[i] = s.AddTenantKeyVersion(t.Context(), "acme", k)
			})
		}
		wg.Wait()
		winner := oneWinner(t, "add", errs)
		want := tenantKeyVersion("acme", 2)
		want.Wrapped = sealed("race", fmt.Sprint(winner))
		checkTenantKey(t, s, "acme", want)
	})

	t.Run("no create under an old version once a new one is added", func(t *testing.T) {
		// Creates under version 1 race a new version. A create that
		// started after the new version was stored must fail; every create
		// that succeeded is found by the listing, and once it is rewrapped,
		// version 1 can be deleted.
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_first")
		const writers, each = 8, 25
		var added atomic.Bool
		var tried atomic.Int32
		var wg sync.WaitGroup
		var mu sync.Mutex
		var created []string
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("sub_%02d_%02d", w, i)
					after := added.Load()
					err := s.CreateSubjectKey(t.Context(), "acme", id, newSubjectKey("acme", id, 1))
					switch {
					case err == nil && after:
						t.Errorf("create %s under version 1 succeeded after version 2 was stored", id)
					case err == nil:
						mu.Lock()
						created = append(created, id)
						mu.Unlock()
					case !errors.Is(err, lethe.ErrStaleTenantKey):
						t.Errorf("create %s: got %v, want <nil> or lethe.ErrStaleTenantKey", id, err)
					}
					tried.Add(1)
				}
			})
		}
		// Add the version once some creates are through, while the others
		// are still running.
		for tried.Load() < writers*each/4 {
			time.Sleep(100 * time.Microsecond)
		}
		if err := s.AddTenantKeyVersion(t.Context(), "acme", tenantKeyVersion("acme", 2)); err != nil {
			t.Fatal(err)
		}
		added.Store(true)
		wg.Wait()
		if int(tried.Load()) == len(created) {
			t.Log("every create ran before the new version: the race was not exercised")
		}
		stale := staleSubjectKeys(t, s, "acme", 2)
		if len(stale) != len(created)+1 {
			t.Fatalf("stale keys: got %d, want the %d created under version 1 and the first", len(stale), len(created)+1)
		}
		for i := 0; i < len(stale); i += 7 {
			res, err := s.RewrapSubjectKeys(t.Context(), "acme", 2, rewrapsOf(stale[i:min(i+7, len(stale))], "v2"))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r != nil {
					t.Fatal(r)
				}
			}
		}
		if n, err := s.DeleteTenantKeysBefore(t.Context(), "acme", 2); err != nil || n != 1 {
			t.Fatalf("delete version 1: got %v, %v, want 1, <nil>", n, err)
		}
	})
}

// tenantKeyVersion returns the given version of a tenant key, made from
// tenant and version, under the master key "mk", created at base.
func tenantKeyVersion(tenant string, version int) *lethe.WrappedKey {
	return &lethe.WrappedKey{Wrapped: sealed("tenant key", tenant, fmt.Sprint(version)), KEKID: "mk", Version: version, CreatedAt: base}
}

func checkTenantKeyVersion(t *testing.T, s lethe.KeyStore, tenant string, want *lethe.WrappedKey) {
	t.Helper()
	got, err := s.TenantKeyVersion(t.Context(), tenant, want.Version)
	if err != nil {
		t.Fatalf("key version %d of tenant %s: %v", want.Version, tenant, err)
	}
	checkWrappedKey(t, fmt.Sprintf("key version %d of tenant %s", want.Version, tenant), got, want)
}

// staleSubjectKeys lists, in one page, the tenant's subject keys not under
// version.
func staleSubjectKeys(t *testing.T, s TenantRotatorKeyStore, tenant string, version int) []lethe.StaleSubjectKey {
	t.Helper()
	keys, err := s.StaleSubjectKeys(t.Context(), tenant, version, "", 10_000)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkStaleSubjectKeys checks the count and the list of the tenant's
// subject keys not under version.
func checkStaleSubjectKeys(t *testing.T, s TenantRotatorKeyStore, tenant string, version int, want []lethe.StaleSubjectKey) {
	t.Helper()
	n, err := s.CountStaleSubjectKeys(t.Context(), tenant, version)
	if err != nil || n != len(want) {
		t.Errorf("count of %s's keys not under version %d: got %v, %v, want %v", tenant, version, n, err, len(want))
	}
	checkStaleSubjectKeyList(t, staleSubjectKeys(t, s, tenant, version), want)
}

func checkStaleSubjectKeyList(t *testing.T, got, want []lethe.StaleSubjectKey) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b lethe.StaleSubjectKey) bool {
		return a.SubjectID == b.SubjectID && a.KEKID == b.KEKID && string(a.Wrapped) == string(b.Wrapped)
	}) {
		t.Errorf("stale subject keys: got %v, want %v", got, want)
	}
}

// rewrapsOf returns a rewrap of each key to new bytes made from tag.
func rewrapsOf(keys []lethe.StaleSubjectKey, tag string) []lethe.SubjectKeyRewrap {
	out := make([]lethe.SubjectKeyRewrap, len(keys))
	for i, k := range keys {
		out[i] = lethe.SubjectKeyRewrap{Old: k, NewWrapped: sealed("rewrapped", tag, k.SubjectID)}
	}
	return out
}
