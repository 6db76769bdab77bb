package storetest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TestKeyStore runs the lethe.KeyStore contract against stores that
// newStore returns; each call must return one on a fresh database.
func TestKeyStore(t *testing.T, newStore func(t *testing.T) lethe.KeyStore) {
	t.Run("tenant key", func(t *testing.T) {
		s := newStore(t)
		_, err := s.TenantKey(t.Context(), "acme")
		wantCode(t, err, lethe.ENOTFOUND)
		want := newWrappedKey("acme")
		if err := s.CreateTenantKey(t.Context(), "acme", want); err != nil {
			t.Fatal(err)
		}
		checkTenantKey(t, s, "acme", want)
		err = s.CreateTenantKey(t.Context(), "acme", newWrappedKey("acme again"))
		wantCode(t, err, lethe.ECONFLICT)
		checkTenantKey(t, s, "acme", want)
		_, err = s.TenantKey(t.Context(), "globex")
		wantCode(t, err, lethe.ENOTFOUND)
	})

	t.Run("subject key", func(t *testing.T) {
		s := newStore(t)
		_, err := s.SubjectKey(t.Context(), "acme", "sub_1")
		wantCode(t, err, lethe.ENOTFOUND)
		if err := s.CreateTenantKey(t.Context(), "acme", newWrappedKey("acme")); err != nil {
			t.Fatal(err)
		}
		want := newSubjectKey("acme", "sub_1", 1)
		if err := s.CreateSubjectKey(t.Context(), "acme", "sub_1", want); err != nil {
			t.Fatal(err)
		}
		checkSubjectKey(t, s, "acme", "sub_1", want)
		err = s.CreateSubjectKey(t.Context(), "acme", "sub_1", newSubjectKey("acme", "sub_1 again", 1))
		wantCode(t, err, lethe.ECONFLICT)
		if errors.Is(err, lethe.ErrStaleTenantKey) {
			t.Errorf("a subject with a key: got %v, want a conflict other than a stale tenant key", err)
		}
		checkSubjectKey(t, s, "acme", "sub_1", want)
		_, err = s.SubjectKey(t.Context(), "acme", "sub_2")
		wantCode(t, err, lethe.ENOTFOUND)
	})

	t.Run("destroy subject key", func(t *testing.T) {
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_1")
		kept := createSubjectKey(t, s, "acme", "sub_2")
		first, later := base.Add(time.Hour), base.Add(2*time.Hour)
		for _, at := range []time.Time{first, later} { // again: no error, first time kept
			if err := s.DestroySubjectKey(t.Context(), "acme", "sub_1", at); err != nil {
				t.Fatalf("destroy at %v: %v", at, err)
			}
			_, err := s.SubjectKey(t.Context(), "acme", "sub_1")
			wantCode(t, err, lethe.EGONE)
			checkForgotten(t, s, "acme", "sub_1", lethe.Forgotten{Tenant: "acme", SubjectID: "sub_1", ErasedAt: first})
		}
		err := s.CreateSubjectKey(t.Context(), "acme", "sub_1", newSubjectKey("acme", "sub_1 reborn", 1))
		wantCode(t, err, lethe.EGONE)
		_, err = s.SubjectKey(t.Context(), "acme", "sub_1")
		wantCode(t, err, lethe.EGONE)
		checkSubjectKey(t, s, "acme", "sub_2", kept)
		_, err = s.Forgotten(t.Context(), "acme", "sub_2")
		wantCode(t, err, lethe.ENOTFOUND)
	})

	t.Run("destroy a subject without a key", func(t *testing.T) {
		s := newStore(t)
		if err := s.DestroySubjectKey(t.Context(), "acme", "sub_keyless", base); err != nil {
			t.Fatal(err)
		}
		_, err := s.SubjectKey(t.Context(), "acme", "sub_keyless")
		wantCode(t, err, lethe.EGONE)
		err = s.CreateSubjectKey(t.Context(), "acme", "sub_keyless", newSubjectKey("acme", "late", 1))
		wantCode(t, err, lethe.EGONE)
		checkForgotten(t, s, "acme", "sub_keyless", lethe.Forgotten{Tenant: "acme", SubjectID: "sub_keyless", ErasedAt: base})
	})

	t.Run("empty subject id", func(t *testing.T) {
		// The forget list reads subject "" as the whole tenant, so these
		// must fail rather than erase it.
		s := newStore(t)
		tenantKey := newWrappedKey("acme")
		if err := s.CreateTenantKey(t.Context(), "acme", tenantKey); err != nil {
			t.Fatal(err)
		}
		kept := createSubjectKey(t, s, "acme", "sub_1")
		if err := s.DestroySubjectKey(t.Context(), "acme", "", base); err == nil {
			t.Error("destroy the key of subject \"\": got no error, want one")
		}
		if err := s.CreateSubjectKey(t.Context(), "acme", "", newSubjectKey("acme", "", 1)); err == nil {
			t.Error("create a key for subject \"\": got no error, want one")
		}
		_, err := s.Forgotten(t.Context(), "acme", "")
		wantCode(t, err, lethe.ENOTFOUND)
		checkTenantKey(t, s, "acme", tenantKey)
		checkSubjectKey(t, s, "acme", "sub_1", kept)
	})

	t.Run("destroy tenant key", func(t *testing.T) {
		s := newStore(t)
		for _, tenant := range []string{"acme", "globex"} {
			if err := s.CreateTenantKey(t.Context(), tenant, newWrappedKey(tenant)); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"sub_1", "sub_2", "sub_3"} {
			createSubjectKey(t, s, "acme", id)
		}
		globexKey := createSubjectKey(t, s, "globex", "sub_1")
		first, later := base.Add(time.Hour), base.Add(2*time.Hour)
		for _, at := range []time.Time{first, later} {
			if err := s.DestroyTenantKey(t.Context(), "acme", at); err != nil {
				t.Fatalf("destroy at %v: %v", at, err)
			}
			_, err := s.TenantKey(t.Context(), "acme")
			wantCode(t, err, lethe.EGONE)
			for _, id := range []string{"sub_1", "sub_2", "sub_3", "sub_never"} {
				_, err := s.SubjectKey(t.Context(), "acme", id)
				wantCode(t, err, lethe.EGONE)
				checkForgotten(t, s, "acme", id, lethe.Forgotten{Tenant: "acme", ErasedAt: first})
			}
			checkForgotten(t, s, "acme", "", lethe.Forgotten{Tenant: "acme", ErasedAt: first})
		}
		err := s.CreateTenantKey(t.Context(), "acme", newWrappedKey("acme reborn"))
		wantCode(t, err, lethe.EGONE)
		err = s.CreateSubjectKey(t.Context(), "acme", "sub_new", newSubjectKey("acme", "sub_new", 1))
		wantCode(t, err, lethe.EGONE)
		// Another tenant's keys, even of a subject with the same ID, stay.
		checkTenantKey(t, s, "globex", newWrappedKey("globex"))
		checkSubjectKey(t, s, "globex", "sub_1", globexKey)
		_, err = s.Forgotten(t.Context(), "globex", "sub_1")
		wantCode(t, err, lethe.ENOTFOUND)
	})

	t.Run("forgotten prefers the subject's entry", func(t *testing.T) {
		s := newStore(t)
		createSubjectKey(t, s, "acme", "sub_1")
		createSubjectKey(t, s, "acme", "sub_2")
		subjectAt, tenantAt := base.Add(time.Minute), base.Add(time.Hour)
		if err := s.DestroySubjectKey(t.Context(), "acme", "sub_1", subjectAt); err != nil {
			t.Fatal(err)
		}
		if err := s.DestroyTenantKey(t.Context(), "acme", tenantAt); err != nil {
			t.Fatal(err)
		}
		// Destroying a subject of an erased tenant still records it.
		if err := s.DestroySubjectKey(t.Context(), "acme", "sub_3", tenantAt.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		checkForgotten(t, s, "acme", "sub_1", lethe.Forgotten{Tenant: "acme", SubjectID: "sub_1", ErasedAt: subjectAt})
		checkForgotten(t, s, "acme", "sub_2", lethe.Forgotten{Tenant: "acme", ErasedAt: tenantAt})
		checkForgotten(t, s, "acme", "sub_3", lethe.Forgotten{Tenant: "acme", SubjectID: "sub_3", ErasedAt: tenantAt.Add(time.Hour)})
		checkForgotten(t, s, "acme", "", lethe.Forgotten{Tenant: "acme", ErasedAt: tenantAt})
	})

	t.Run("forgotten not found", func(t *testing.T) {
		s := newStore(t)
		if err := s.DestroySubjectKey(t.Context(), "acme", "sub_1", base); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ tenant, id string }{{"acme", "sub_2"}, {"acme", ""}, {"globex", "sub_1"}, {"globex", ""}} {
			_, err := s.Forgotten(t.Context(), c.tenant, c.id)
			wantCode(t, err, lethe.ENOTFOUND)
		}
	})

	t.Run("forget list", func(t *testing.T) {
		s := newStore(t)
		if list, err := s.ForgetList(t.Context(), lethe.Forgotten{}, 10); err != nil || len(list) != 0 {
			t.Fatalf("empty list: got %v, %v, want none", list, err)
		}
		t0 := base.Truncate(time.Microsecond)
		at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
		for _, f := range []lethe.Forgotten{
			{Tenant: "globex", SubjectID: "sub_b", ErasedAt: at(1)},
			{Tenant: "acme", SubjectID: "sub_z", ErasedAt: at(2)},
			{Tenant: "acme", SubjectID: "sub_a", ErasedAt: at(1)},
			{Tenant: "globex", SubjectID: "sub_a", ErasedAt: at(1)},
			{Tenant: "initech", ErasedAt: at(3)},
			{Tenant: "globex", ErasedAt: at(1)}, // the tenant: "" before its subjects
			{Tenant: "acme", SubjectID: "sub_early", ErasedAt: at(0)},
			{Tenant: "acme", SubjectID: "sub_a", ErasedAt: at(9)}, // again: keeps at(1)
		} {
			destroy(t, s, f)
		}
		all := []lethe.Forgotten{
			{Tenant: "acme", SubjectID: "sub_early", ErasedAt: at(0)},
			{Tenant: "acme", SubjectID: "sub_a", ErasedAt: at(1)},
			{Tenant: "globex", ErasedAt: at(1)},
			{Tenant: "globex", SubjectID: "sub_a", ErasedAt: at(1)},
			{Tenant: "globex", SubjectID: "sub_b", ErasedAt: at(1)},
			{Tenant: "acme", SubjectID: "sub_z", ErasedAt: at(2)},
			{Tenant: "initech", ErasedAt: at(3)},
		}
		for _, tc := range []struct {
			name  string
			after lethe.Forgotten
			limit int
			want  []lethe.Forgotten
		}{
			{"all", lethe.Forgotten{}, 100, all},
			{"all, exactly", lethe.Forgotten{}, 7, all},
			{"first two", lethe.Forgotten{}, 2, all[:2]},
			{"after the first", all[0], 100, all[1:]},
			{"after an entry sharing its time", all[1], 100, all[2:]},
			{"after a tenant entry", all[2], 2, all[3:5]},
			{"after a time alone", lethe.Forgotten{ErasedAt: at(1)}, 100, all[1:]},
			{"after a time, two", lethe.Forgotten{ErasedAt: at(1)}, 2, all[1:3]},
			{"after an entry not in the list", lethe.Forgotten{Tenant: "acme", SubjectID: "sub_b", ErasedAt: at(1)}, 100, all[2:]},
			{"after a microsecond later", lethe.Forgotten{ErasedAt: at(1).Add(time.Microsecond)}, 100, all[5:]},
			{"after the last", all[6], 100, nil},
			{"after a later time", lethe.Forgotten{ErasedAt: at(4)}, 100, nil},
			{"limit 0", lethe.Forgotten{}, 0, nil},
			{"negative limit", lethe.Forgotten{}, -1, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ForgetList(t.Context(), tc.after, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				checkForgetList(t, got, tc.want)
			})
		}
	})

	t.Run("forget list in pages", func(t *testing.T) {
		// 25 entries over 5 times, most of them shared, in 3 tenants with
		// IDs of different lengths, stored out of order: paging with limit
		// 4, each page starting after the last entry of the one before,
		// gives every entry once, in order.
		s := newStore(t)
		t0 := base.Truncate(time.Microsecond)
		times := []time.Time{t0, t0.Add(time.Second), t0.Add(time.Second + time.Microsecond), t0.Add(time.Hour), t0.Add(48 * time.Hour)}
		tenants := []string{"acme", "acme_eu", "globex"}
		var want []lethe.Forgotten
		for i := range 25 {
			f := lethe.Forgotten{Tenant: tenants[i%3], SubjectID: fmt.Sprintf("sub_%d", i), ErasedAt: times[(i*3)%5]}
			if i < 3 {
				f.SubjectID = "" // the whole tenant
			}
			want = append(want, f)
		}
		for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(len(want)) {
			destroy(t, s, want[i])
		}
		slices.SortFunc(want, func(a, b lethe.Forgotten) int {
			return cmp.Or(a.ErasedAt.Compare(b.ErasedAt), strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.SubjectID, b.SubjectID))
		})
		const limit = 4
		var got []lethe.Forgotten
		after := lethe.Forgotten{}
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("no end after %d pages", pages)
			}
			page, err := s.ForgetList(t.Context(), after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("page %d: got %d entries, want at most %d", pages, len(page), limit)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		checkForgetList(t, got, want)
	})

	t.Run("secrets", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Secret(t.Context(), "index_root")
		wantCode(t, err, lethe.ENOTFOUND)
		want := newWrappedKey("index_root")
		if err := s.CreateSecret(t.Context(), "index_root", want); err != nil {
			t.Fatal(err)
		}
		err = s.CreateSecret(t.Context(), "index_root", newWrappedKey("another"))
		wantCode(t, err, lethe.ECONFLICT)
		got, err := s.Secret(t.Context(), "index_root")
		if err != nil {
			t.Fatal(err)
		}
		checkWrappedKey(t, "secret index_root", got, want)
		_, err = s.Secret(t.Context(), "other")
		wantCode(t, err, lethe.ENOTFOUND)
	})

	t.Run("concurrent secret creation", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.CreateSecret(t.Context(), "index_root", newWrappedKey(fmt.Sprint(i))) })
		}
		wg.Wait()
		winner := oneWinner(t, "create", errs)
		got, err := s.Secret(t.Context(), "index_root")
		if err != nil {
			t.Fatal(err)
		}
		checkWrappedKey(t, "secret", got, newWrappedKey(fmt.Sprint(winner)))
	})

	t.Run("tenant isolation", func(t *testing.T) {
		s := newStore(t)
		bKey := createSubjectKey(t, s, "b", "sub_1")
		_, err := s.SubjectKey(t.Context(), "a", "sub_1")
		wantCode(t, err, lethe.ENOTFOUND)
		aKey := createSubjectKey(t, s, "a", "sub_1")
		if err := s.DestroySubjectKey(t.Context(), "a", "sub_1", base); err != nil {
			t.Fatal(err)
		}
		checkSubjectKey(t, s, "b", "sub_1", bKey)
		_, err = s.Forgotten(t.Context(), "b", "sub_1")
		wantCode(t, err, lethe.ENOTFOUND)
		if bytes.Equal(aKey.Wrapped, bKey.Wrapped) {
			t.Fatal("test keys are equal")
		}
	})

	t.Run("concurrent create and destroy", func(t *testing.T) {
		// Whichever runs first, a destroyed key must stay destroyed: a
		// create that races a destruction either fails or is undone.
		s := newStore(t)
		const n = 16
		for i := range n {
			for _, tenant := range []string{"acme", fmt.Sprintf("tenant_%02d", i)} {
				if err := s.CreateTenantKey(t.Context(), tenant, newWrappedKey(tenant)); err != nil && lethe.ErrorCode(err) != lethe.ECONFLICT {
					t.Fatal(err)
				}
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 4*n)
		for i := range n {
			subject, tenant := fmt.Sprintf("sub_%02d", i), fmt.Sprintf("tenant_%02d", i)
			wg.Go(func() {
				errs[4*i] = s.CreateSubjectKey(t.Context(), "acme", subject, newSubjectKey("acme", subject, 1))
			})
			wg.Go(func() { errs[4*i+1] = s.DestroySubjectKey(t.Context(), "acme", subject, base) })
			wg.Go(func() {
				errs[4*i+2] = s.CreateSubjectKey(t.Context(), tenant, subject, newSubjectKey(tenant, subject, 1))
			})
			wg.Go(func() { errs[4*i+3] = s.DestroyTenantKey(t.Context(), tenant, base) })
		}
		wg.Wait()
		for i, err := range errs {
			create := i%2 == 0
			if code := lethe.ErrorCode(err); code != "" && (!create || code != lethe.EGONE) {
				t.Errorf("operation %d (create: %v): got %v, want <nil>, or gone for a create", i, create, err)
			}
		}
		for i := range n {
			subject, tenant := fmt.Sprintf("sub_%02d", i), fmt.Sprintf("tenant_%02d", i)
			_, err := s.SubjectKey(t.Context(), "acme", subject)
			wantCode(t, err, lethe.EGONE)
			_, err = s.SubjectKey(t.Context(), tenant, subject)
			wantCode(t, err, lethe.EGONE)
		}
	})
}

// newWrappedKey returns a wrapped key made from seed, created at base.
func newWrappedKey(seed string) *lethe.WrappedKey {
	return &lethe.WrappedKey{Wrapped: sealed("key", seed), KEKID: "kek_" + seed, CreatedAt: base}
}

// newSubjectKey returns a subject key made from tenant and seed, wrapped
// under the given version of the tenant's key, created at base.
func newSubjectKey(tenant, seed string, version int) *lethe.WrappedKey {
	return &lethe.WrappedKey{Wrapped: sealed("key", tenant+"/"+seed), KEKID: lethe.TenantKEKID(tenant, version), CreatedAt: base}
}

// createSubjectKey stores a new key for the subject, wrapped under the
// tenant's current key (made first if the tenant has none), and returns
// it.
func createSubjectKey(t *testing.T, s lethe.KeyStore, tenant, subjectID string) *lethe.WrappedKey {
	t.Helper()
	if err := s.CreateTenantKey(t.Context(), tenant, newWrappedKey(tenant)); err != nil && lethe.ErrorCode(err) != lethe.ECONFLICT {
		t.Fatalf("create key of tenant %s: %v", tenant, err)
	}
	current, err := s.TenantKey(t.Context(), tenant)
	if err != nil {
		t.Fatalf("key of tenant %s: %v", tenant, err)
	}
	k := newSubjectKey(tenant, subjectID, current.Version)
	if err := s.CreateSubjectKey(t.Context(), tenant, subjectID, k); err != nil {
		t.Fatalf("create key of %s/%s: %v", tenant, subjectID, err)
	}
	return k
}

// checkTenantKey checks the tenant's current key. A want without a
// Version is the first key, version 1.
func checkTenantKey(t *testing.T, s lethe.KeyStore, tenant string, want *lethe.WrappedKey) {
	t.Helper()
	got, err := s.TenantKey(t.Context(), tenant)
	if err != nil {
		t.Fatalf("key of tenant %s: %v", tenant, err)
	}
	w := *want
	w.Version = max(w.Version, 1)
	checkWrappedKey(t, "key of tenant "+tenant, got, &w)
}

func checkSubjectKey(t *testing.T, s lethe.KeyStore, tenant, subjectID string, want *lethe.WrappedKey) {
	t.Helper()
	got, err := s.SubjectKey(t.Context(), tenant, subjectID)
	if err != nil {
		t.Fatalf("key of %s/%s: %v", tenant, subjectID, err)
	}
	checkWrappedKey(t, "key of "+tenant+"/"+subjectID, got, want)
}

func checkWrappedKey(t *testing.T, name string, got, want *lethe.WrappedKey) {
	t.Helper()
	if !bytes.Equal(got.Wrapped, want.Wrapped) || got.KEKID != want.KEKID || got.Version != want.Version {
		t.Errorf("%s: got %x %s version %d, want %x %s version %d", name, got.Wrapped, got.KEKID, got.Version, want.Wrapped, want.KEKID, want.Version)
	}
	checkTime(t, name+" created_at", &got.CreatedAt, &want.CreatedAt)
}

// destroy destroys the key of f's subject, or of its tenant if f names no
// subject, at f.ErasedAt, so adding f to the forget list.
func destroy(t *testing.T, s lethe.KeyStore, f lethe.Forgotten) {
	t.Helper()
	var err error
	if f.SubjectID == "" {
		err = s.DestroyTenantKey(t.Context(), f.Tenant, f.ErasedAt)
	} else {
		err = s.DestroySubjectKey(t.Context(), f.Tenant, f.SubjectID, f.ErasedAt)
	}
	if err != nil {
		t.Fatalf("destroy %s/%q: %v", f.Tenant, f.SubjectID, err)
	}
}

// checkForgetList checks that got is want, entry by entry.
func checkForgetList(t *testing.T, got, want []lethe.Forgotten) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		checkForgottenEntry(t, &got[i], want[i])
	}
}

// checkForgotten checks that Forgotten(tenant, subjectID) returns want.
func checkForgotten(t *testing.T, s lethe.KeyStore, tenant, subjectID string, want lethe.Forgotten) {
	t.Helper()
	got, err := s.Forgotten(t.Context(), tenant, subjectID)
	if err != nil {
		t.Fatalf("forgotten %s/%s: %v", tenant, subjectID, err)
	}
	checkForgottenEntry(t, got, want)
}

func checkForgottenEntry(t *testing.T, got *lethe.Forgotten, want lethe.Forgotten) {
	t.Helper()
	if got.Tenant != want.Tenant || got.SubjectID != want.SubjectID {
		t.Errorf("forgotten: got %s/%q, want %s/%q", got.Tenant, got.SubjectID, want.Tenant, want.SubjectID)
	}
	checkTime(t, "forgotten "+want.Tenant+"/"+want.SubjectID+" erased_at", &got.ErasedAt, &want.ErasedAt)
}

// oneWinner checks the results of racing operations of which exactly one
// must succeed and the others conflict, and returns the winner's index.
func oneWinner(t *testing.T, op string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch lethe.ErrorCode(err) {
		case "":
			if winner >= 0 {
				t.Errorf("%s %d and %d both won", op, winner, i)
			}
			winner = i
		case lethe.ECONFLICT:
		default:
			t.Errorf("%s %d: got %v, want <nil> or a conflict", op, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no %s won", op)
	}
	return winner
}
