package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TestVaultStore runs the lethe.VaultStore contract against stores that
// newStore returns; each call must return one on a fresh database. The
// stores never see plaintext, so every index and sealed value here is just
// arbitrary bytes.
func TestVaultStore(t *testing.T, newStore func(t *testing.T) lethe.VaultStore) {
	t.Run("create and read", func(t *testing.T) {
		s := newStore(t)
		sub, ids, first := newSubject("acme", "sub_1", lethe.KindPhone, lethe.KindEmail, "shop_customer_id")
		if err := s.CreateSubject(t.Context(), sub, ids, first); err != nil {
			t.Fatal(err)
		}
		got, err := s.Subject(t.Context(), "acme", "sub_1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != sub.ID || got.Tenant != sub.Tenant {
			t.Errorf("subject: got %s/%s, want %s/%s", got.Tenant, got.ID, sub.Tenant, sub.ID)
		}
		checkTime(t, "subject created_at", &got.CreatedAt, &sub.CreatedAt)
		slices.SortFunc(ids, func(a, b lethe.SealedIdentifier) int { return strings.Compare(a.Kind, b.Kind) })
		checkIdentifiers(t, s, "acme", "sub_1", ids)
		for _, id := range ids {
			checkHolder(t, s, id.Tenant, id.Kind, id.Index, "sub_1")
		}
		latest, err := s.LatestVersion(t.Context(), "acme", "sub_1")
		if err != nil {
			t.Fatal(err)
		}
		checkVersion(t, latest, first)
		checkTime(t, "latest version's subject_created_at", &latest.SubjectCreatedAt, &sub.CreatedAt)
		checkVersions(t, s, "acme", "sub_1", first)
	})

	t.Run("values are arbitrary bytes", func(t *testing.T) {
		s := newStore(t)
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		sub, ids, first := newSubject("acme", "sub_bytes", lethe.KindEmail)
		ids[0].Index, ids[0].Sealed, first.Sealed = []byte{0, 0xff, 0}, all, all
		if err := s.CreateSubject(t.Context(), sub, ids, first); err != nil {
			t.Fatal(err)
		}
		checkIdentifiers(t, s, "acme", "sub_bytes", ids)
		checkHolder(t, s, "acme", lethe.KindEmail, []byte{0, 0xff, 0}, "sub_bytes")
		for _, index := range [][]byte{{0, 0xff}, {0, 0xff, 0, 0}, {0xff, 0}} {
			_, err := s.SubjectByIdentifier(t.Context(), "acme", lethe.KindEmail, index)
			wantCode(t, err, lethe.ENOTFOUND)
		}
		latest, err := s.LatestVersion(t.Context(), "acme", "sub_bytes")
		if err != nil {
			t.Fatal(err)
		}
		checkVersion(t, latest, first)
	})

	t.Run("subject not found", func(t *testing.T) {
		s := newStore(t)
		// Identifiers and Versions of a subject that does not exist are
		// none, and no error: on an empty store…
		checkIdentifiers(t, s, "acme", "sub_1", nil)
		checkVersions(t, s, "acme", "sub_1")
		createSubject(t, s, "acme", "sub_1", lethe.KindEmail)
		// …and beside a subject, in its tenant and in another.
		checkIdentifiers(t, s, "globex", "sub_1", nil)
		checkVersions(t, s, "globex", "sub_1")
		_, err := s.Subject(t.Context(), "acme", "sub_2")
		wantCode(t, err, lethe.ENOTFOUND)
		_, err = s.LatestVersion(t.Context(), "acme", "sub_2")
		wantCode(t, err, lethe.ENOTFOUND)
		_, err = s.SubjectByIdentifier(t.Context(), "acme", lethe.KindEmail, index("acme", "sub_2", lethe.KindEmail))
		wantCode(t, err, lethe.ENOTFOUND)
		checkIdentifiers(t, s, "acme", "sub_2", nil)
		checkVersions(t, s, "acme", "sub_2")
	})

	t.Run("duplicate subject", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1", lethe.KindEmail)
		sub, ids, first := newSubject("acme", "sub_1", lethe.KindPhone)
		err := s.CreateSubject(t.Context(), sub, ids, first)
		wantCode(t, err, lethe.ECONFLICT)
		if msg := lethe.ErrorMessage(err); !strings.Contains(msg, "sub_1") {
			t.Errorf("message: got %q, want it to name sub_1", msg)
		}
		// The failed create left nothing behind.
		checkIdentifiers(t, s, "acme", "sub_1", []lethe.SealedIdentifier{newIdentifier("acme", "sub_1", lethe.KindEmail)})
		checkNoHolder(t, s, "acme", lethe.KindPhone, ids[0].Index)
	})

	t.Run("identifier held by another subject", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1", lethe.KindEmail)
		sub, ids, first := newSubject("acme", "sub_2", lethe.KindPhone, lethe.KindEmail)
		ids[1].Index = index("acme", "sub_1", lethe.KindEmail) // sub_1's email
		err := s.CreateSubject(t.Context(), sub, ids, first)
		wantCode(t, err, lethe.ECONFLICT)
		checkConflictMessage(t, err, lethe.KindEmail, ids...)
		// The transaction rolled back: no sub_2, and its phone is free.
		_, err = s.Subject(t.Context(), "acme", "sub_2")
		wantCode(t, err, lethe.ENOTFOUND)
		checkNoHolder(t, s, "acme", lethe.KindPhone, ids[0].Index)
		checkHolder(t, s, "acme", lethe.KindEmail, ids[1].Index, "sub_1")
		// The subject can be created once the identifier is its own.
		ids[1] = newIdentifier("acme", "sub_2", lethe.KindEmail)
		if err := s.CreateSubject(t.Context(), sub, ids, first); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("same index in another kind or tenant", func(t *testing.T) {
		s := newStore(t)
		shared := index("shared")
		for _, c := range []struct{ tenant, id, kind string }{
			{"acme", "sub_1", lethe.KindEmail},
			{"acme", "sub_2", lethe.KindLogin},
			{"globex", "sub_1", lethe.KindEmail},
		} {
			sub, ids, first := newSubject(c.tenant, c.id, c.kind)
			ids[0].Index = shared
			if err := s.CreateSubject(t.Context(), sub, ids, first); err != nil {
				t.Fatalf("create %s/%s: %v", c.tenant, c.id, err)
			}
			checkHolder(t, s, c.tenant, c.kind, shared, c.id)
		}
	})

	t.Run("invalid create", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name   string
			change func(ids []lethe.SealedIdentifier, first *lethe.SealedVersion) *lethe.SealedVersion
			code   string
		}{
			{"two identifiers of one kind", func(ids []lethe.SealedIdentifier, first *lethe.SealedVersion) *lethe.SealedVersion {
				ids[1].Kind = ids[0].Kind
				return first
			}, lethe.EINVALID},
			{"identifier of another subject", func(ids []lethe.SealedIdentifier, first *lethe.SealedVersion) *lethe.SealedVersion {
				ids[1].SubjectID = "sub_other"
				return first
			}, lethe.EINTERNAL},
			{"identifier of another tenant", func(ids []lethe.SealedIdentifier, first *lethe.SealedVersion) *lethe.SealedVersion {
				ids[0].Tenant = "globex"
				return first
			}, lethe.EINTERNAL},
			{"version of another subject", func(_ []lethe.SealedIdentifier, first *lethe.SealedVersion) *lethe.SealedVersion {
				first.SubjectID = "sub_other"
				return first
			}, lethe.EINTERNAL},
			{"first version not 1", func(_ []lethe.SealedIdentifier, first *lethe.SealedVersion) *lethe.SealedVersion {
				first.Version = 2
				return first
			}, lethe.EINTERNAL},
			{"no first version", func([]lethe.SealedIdentifier, *lethe.SealedVersion) *lethe.SealedVersion {
				return nil
			}, lethe.EINTERNAL},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sub, ids, first := newSubject("acme", "sub_invalid", lethe.KindEmail, lethe.KindPhone)
				first = tc.change(ids, first)
				err := s.CreateSubject(t.Context(), sub, ids, first)
				wantCode(t, err, tc.code)
				_, err = s.Subject(t.Context(), "acme", "sub_invalid")
				wantCode(t, err, lethe.ENOTFOUND)
			})
		}
	})

	t.Run("append version", func(t *testing.T) {
		s := newStore(t)
		_, _, first := createSubject(t, s, "acme", "sub_1")
		want := []*lethe.SealedVersion{first}
		for n := 2; n <= 4; n++ {
			v := newVersion("acme", "sub_1", n)
			if err := s.AppendVersion(t.Context(), v, nil, nil); err != nil {
				t.Fatalf("append version %d: %v", n, err)
			}
			want = append(want, v)
		}
		for _, n := range []int{-1, 0, 1, 4, 6, 100} {
			err := s.AppendVersion(t.Context(), newVersion("acme", "sub_1", n), nil, nil)
			wantStale(t, err)
		}
		latest, err := s.LatestVersion(t.Context(), "acme", "sub_1")
		if err != nil {
			t.Fatal(err)
		}
		checkVersion(t, latest, want[3])
		checkVersions(t, s, "acme", "sub_1", want...)
	})

	t.Run("append version with identifiers", func(t *testing.T) {
		s := newStore(t)
		_, _, first := createSubject(t, s, "acme", "sub_1", lethe.KindEmail, lethe.KindPhone)
		oldEmail := index("acme", "sub_1", lethe.KindEmail)
		newEmail := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_1", Kind: lethe.KindEmail,
			Index: index("new email"), Sealed: sealed("new email")}
		login := newIdentifier("acme", "sub_1", lethe.KindLogin)
		v2 := newVersion("acme", "sub_1", 2)
		if err := s.AppendVersion(t.Context(), v2,
			[]lethe.SealedIdentifier{newEmail, login}, []string{lethe.KindPhone, "kind_never_held"}); err != nil {
			t.Fatal(err)
		}
		checkVersions(t, s, "acme", "sub_1", first, v2)
		checkIdentifiers(t, s, "acme", "sub_1", []lethe.SealedIdentifier{newEmail, login})
		checkHolder(t, s, "acme", lethe.KindEmail, newEmail.Index, "sub_1")
		checkHolder(t, s, "acme", lethe.KindLogin, login.Index, "sub_1")
		checkNoHolder(t, s, "acme", lethe.KindEmail, oldEmail)
		checkNoHolder(t, s, "acme", lethe.KindPhone, index("acme", "sub_1", lethe.KindPhone))
		// The old email is free for another subject now, in the same
		// tenant, and with it the other subject's own next version.
		_, _, first2 := createSubject(t, s, "acme", "sub_2", lethe.KindLogin)
		taken := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_2", Kind: lethe.KindEmail, Index: oldEmail, Sealed: sealed("sub_2 email")}
		sub2v2 := newVersion("acme", "sub_2", 2)
		if err := s.AppendVersion(t.Context(), sub2v2, []lethe.SealedIdentifier{taken}, nil); err != nil {
			t.Fatalf("take the old email: %v", err)
		}
		checkHolder(t, s, "acme", lethe.KindEmail, oldEmail, "sub_2")
		checkVersions(t, s, "acme", "sub_2", first2, sub2v2)
		// Setting an identifier to the value it has is no conflict.
		v3 := newVersion("acme", "sub_1", 3)
		if err := s.AppendVersion(t.Context(), v3, []lethe.SealedIdentifier{newEmail}, nil); err != nil {
			t.Errorf("set the same email again: %v", err)
		}
		// Nothing to change but the profile is the common case.
		v4 := newVersion("acme", "sub_1", 4)
		if err := s.AppendVersion(t.Context(), v4, nil, []string{}); err != nil {
			t.Errorf("append without identifiers: %v", err)
		}
		checkIdentifiers(t, s, "acme", "sub_1", []lethe.SealedIdentifier{newEmail, login})
		checkVersions(t, s, "acme", "sub_1", first, v2, v3, v4)
	})

	t.Run("append version with a taken identifier", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1", lethe.KindEmail, lethe.KindPhone)
		_, _, first := createSubject(t, s, "acme", "sub_2", lethe.KindEmail, lethe.KindPhone)
		before := identifiers(t, s, "acme", "sub_2")
		taken := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_2", Kind: lethe.KindEmail,
			Index: index("acme", "sub_1", lethe.KindEmail), Sealed: sealed("sub_1's email, sealed for sub_2")}
		login := newIdentifier("acme", "sub_2", lethe.KindLogin)
		for _, set := range [][]lethe.SealedIdentifier{{taken}, {login, taken}} {
			err := s.AppendVersion(t.Context(), newVersion("acme", "sub_2", 2), set, []string{lethe.KindPhone})
			wantCode(t, err, lethe.ECONFLICT)
			if errors.Is(err, lethe.ErrStaleVersion) {
				t.Errorf("a taken identifier: got %v, want a conflict other than ErrStaleVersion", err)
			}
			checkConflictMessage(t, err, lethe.KindEmail, set...)
			// Rolled back: no version 2, the phone not removed, the login
			// not added.
			checkVersions(t, s, "acme", "sub_2", first)
			checkIdentifiers(t, s, "acme", "sub_2", before)
			checkHolder(t, s, "acme", lethe.KindEmail, taken.Index, "sub_1")
			checkNoHolder(t, s, "acme", lethe.KindLogin, login.Index)
		}
		// Version 2 is still the next one.
		v2 := newVersion("acme", "sub_2", 2)
		if err := s.AppendVersion(t.Context(), v2, []lethe.SealedIdentifier{login}, nil); err != nil {
			t.Fatal(err)
		}
		checkVersions(t, s, "acme", "sub_2", first, v2)
	})

	t.Run("stale append leaves identifiers unchanged", func(t *testing.T) {
		s := newStore(t)
		_, _, first := createSubject(t, s, "acme", "sub_1", lethe.KindEmail, lethe.KindPhone)
		v2 := newVersion("acme", "sub_1", 2)
		if err := s.AppendVersion(t.Context(), v2, nil, nil); err != nil {
			t.Fatal(err)
		}
		before := identifiers(t, s, "acme", "sub_1")
		email := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_1", Kind: lethe.KindEmail,
			Index: index("lost email"), Sealed: sealed("lost email")}
		login := newIdentifier("acme", "sub_1", lethe.KindLogin)
		for _, n := range []int{1, 2, 4} {
			stale := newVersion("acme", "sub_1", n)
			stale.Sealed = sealed("stale", fmt.Sprint(n))
			err := s.AppendVersion(t.Context(), stale, []lethe.SealedIdentifier{email, login}, []string{lethe.KindPhone})
			wantStale(t, err)
			checkIdentifiers(t, s, "acme", "sub_1", before)
			checkNoHolder(t, s, "acme", lethe.KindEmail, email.Index)
			checkNoHolder(t, s, "acme", lethe.KindLogin, login.Index)
			checkVersions(t, s, "acme", "sub_1", first, v2)
		}
	})

	t.Run("append version to a missing subject", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1", lethe.KindEmail)
		set := []lethe.SealedIdentifier{newIdentifier("acme", "sub_2", lethe.KindEmail)}
		for _, tc := range []struct {
			name    string
			version int
			set     []lethe.SealedIdentifier
			remove  []string
		}{
			{"version 1", 1, nil, nil},
			{"version 2", 2, nil, nil},
			{"with an identifier", 1, set, nil},
			{"with a removal", 2, nil, []string{lethe.KindEmail}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.AppendVersion(t.Context(), newVersion("acme", "sub_2", tc.version), tc.set, tc.remove)
				wantCode(t, err, lethe.ENOTFOUND)
				checkVersions(t, s, "acme", "sub_2")
				checkIdentifiers(t, s, "acme", "sub_2", nil)
				checkNoHolder(t, s, "acme", lethe.KindEmail, set[0].Index)
			})
		}
	})

	t.Run("invalid append", func(t *testing.T) {
		s := newStore(t)
		_, _, first := createSubject(t, s, "acme", "sub_1", lethe.KindEmail, lethe.KindPhone)
		before := identifiers(t, s, "acme", "sub_1")
		email := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_1", Kind: lethe.KindEmail, Index: index("e1"), Sealed: sealed("e1")}
		email2 := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_1", Kind: lethe.KindEmail, Index: index("e2"), Sealed: sealed("e2")}
		other := email
		other.SubjectID = "sub_2"
		otherTenant := email
		otherTenant.Tenant = "globex"
		for _, tc := range []struct {
			name   string
			set    []lethe.SealedIdentifier
			remove []string
			code   string
		}{
			{"one kind twice", []lethe.SealedIdentifier{email, email2}, nil, lethe.EINVALID},
			{"set and removed", []lethe.SealedIdentifier{email}, []string{lethe.KindEmail}, lethe.EINVALID},
			{"identifier of another subject", []lethe.SealedIdentifier{other}, nil, lethe.EINTERNAL},
			{"identifier of another tenant", []lethe.SealedIdentifier{otherTenant}, nil, lethe.EINTERNAL},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.AppendVersion(t.Context(), newVersion("acme", "sub_1", 2), tc.set, tc.remove)
				wantCode(t, err, tc.code)
				checkIdentifiers(t, s, "acme", "sub_1", before)
				checkVersions(t, s, "acme", "sub_1", first)
			})
		}
	})

	t.Run("concurrent appends of one version", func(t *testing.T) {
		// Each writer also changes the email and adds a login, so a loser
		// that got half its change in would show.
		s := newStore(t)
		_, ids, first := createSubject(t, s, "acme", "sub_1", lethe.KindEmail, lethe.KindPhone)
		const n = 16
		change := func(i int) (*lethe.SealedVersion, []lethe.SealedIdentifier) {
			v := newVersion("acme", "sub_1", 2)
			v.Sealed = sealed("writer", fmt.Sprint(i))
			email := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_1", Kind: lethe.KindEmail,
				Index: index("email", fmt.Sprint(i)), Sealed: sealed("email", fmt.Sprint(i))}
			login := lethe.SealedIdentifier{Tenant: "acme", SubjectID: "sub_1", Kind: lethe.KindLogin,
				Index: index("login", fmt.Sprint(i)), Sealed: sealed("login", fmt.Sprint(i))}
			return v, []lethe.SealedIdentifier{email, login}
		}
		// Concurrent reads first, so that a store with a connection pool has
		// its connections open, and then every writer at once: the appends
		// then truly overlap, and the check that the version is the next
		// one passes in more than one (it is the insert that must fail).
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() { s.LatestVersion(t.Context(), "acme", "sub_1") })
		}
		wg.Wait()
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				v, set := change(i)
				<-start
				errs[i] = s.AppendVersion(t.Context(), v, set, []string{lethe.KindPhone})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("appends %d and %d both won", winner, i)
				}
				winner = i
			case !errors.Is(err, lethe.ErrStaleVersion):
				t.Errorf("append %d: got %v, want <nil> or ErrStaleVersion", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no append won")
		}
		v, set := change(winner)
		checkVersions(t, s, "acme", "sub_1", first, v)
		checkIdentifiers(t, s, "acme", "sub_1", set) // email, login: the phone is gone
		checkNoHolder(t, s, "acme", lethe.KindEmail, ids[0].Index)
		for i := range n {
			if i == winner {
				continue
			}
			_, lost := change(i)
			checkNoHolder(t, s, "acme", lethe.KindEmail, lost[0].Index)
			checkNoHolder(t, s, "acme", lethe.KindLogin, lost[1].Index)
		}
	})

	t.Run("concurrent creates with one identifier", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sub, ids, first := newSubject("acme", fmt.Sprintf("sub_%02d", i), lethe.KindEmail)
				ids[0].Index = index("one email")
				errs[i] = s.CreateSubject(t.Context(), sub, ids, first)
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch lethe.ErrorCode(err) {
			case "":
				if winner >= 0 {
					t.Errorf("creates %d and %d both won", winner, i)
				}
				winner = i
			case lethe.ECONFLICT:
				checkConflictMessage(t, err, lethe.KindEmail)
			default:
				t.Errorf("create %d: got %v, want <nil> or a conflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no create won")
		}
		checkHolder(t, s, "acme", lethe.KindEmail, index("one email"), fmt.Sprintf("sub_%02d", winner))
	})

	t.Run("tokens", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1")
		createSubject(t, s, "acme", "sub_2")
		want := []lethe.SealedToken{
			newToken("tok_a", "acme", "sub_1", lethe.KindEmail),
			newToken("tok_b", "acme", "sub_1", ""),
			newToken("tok_c", "acme", "sub_2", "address.city"),
		}
		if err := s.CreateTokens(t.Context(), want); err != nil {
			t.Fatal(err)
		}
		checkTokens(t, s, "acme", []string{"tok_c", "tok_unknown", "tok_a", "tok_b", "tok_a"}, want)
		checkTokens(t, s, "acme", []string{"tok_b"}, want[1:2])
		checkTokens(t, s, "acme", []string{"tok_unknown", "", "tok_\x00", "tok_\xff"}, nil)
		checkTokens(t, s, "acme", nil, nil)
		if err := s.CreateTokens(t.Context(), nil); err != nil {
			t.Errorf("create no tokens: %v", err)
		}
	})

	t.Run("token conflicts", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1")
		existing := newToken("tok_existing", "acme", "sub_1", "")
		if err := s.CreateTokens(t.Context(), []lethe.SealedToken{existing}); err != nil {
			t.Fatal(err)
		}
		fresh := newToken("tok_fresh", "acme", "sub_1", "")
		for _, tc := range []struct {
			name  string
			batch []lethe.SealedToken
			code  string
		}{
			{"existing token", []lethe.SealedToken{fresh, newToken("tok_existing", "acme", "sub_1", "other")}, lethe.ECONFLICT},
			{"token twice in the batch", []lethe.SealedToken{fresh, fresh}, lethe.ECONFLICT},
			{"missing subject", []lethe.SealedToken{fresh, newToken("tok_orphan", "acme", "sub_missing", "")}, lethe.ENOTFOUND},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.CreateTokens(t.Context(), tc.batch)
				wantCode(t, err, tc.code)
				if msg := lethe.ErrorMessage(err); tc.code == lethe.ENOTFOUND && !strings.Contains(msg, "sub_missing") {
					t.Errorf("message: got %q, want it to name sub_missing", msg)
				}
				// All or nothing: the fresh token was not stored.
				checkTokens(t, s, "acme", []string{"tok_existing", "tok_fresh", "tok_orphan"}, []lethe.SealedToken{existing})
			})
		}
	})

	t.Run("many tokens", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1")
		createSubject(t, s, "globex", "sub_1")
		const n = 2500
		var want, others []lethe.SealedToken
		var query []string
		for i := range n {
			want = append(want, newToken(fmt.Sprintf("tok_%05d", i), "acme", "sub_1", fmt.Sprintf("field_%d", i%7)))
			others = append(others, newToken(fmt.Sprintf("tok_globex_%05d", i), "globex", "sub_1", ""))
			query = append(query, want[i].Token, others[i].Token, fmt.Sprintf("tok_unknown_%05d", i), fmt.Sprintf("tok_%05d", n+i))
		}
		for _, batch := range [][]lethe.SealedToken{want, others} {
			if err := s.CreateTokens(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
		}
		// 10,000 tokens: the most one call is expected to take.
		checkTokens(t, s, "acme", query, want)
		checkTokens(t, s, "globex", query, others)
	})

	t.Run("delete subject", func(t *testing.T) {
		s := newStore(t)
		_, ids, _ := createSubject(t, s, "acme", "sub_1", lethe.KindEmail, lethe.KindPhone)
		_, keptIDs, keptFirst := createSubject(t, s, "acme", "sub_2", lethe.KindEmail)
		if err := s.AppendVersion(t.Context(), newVersion("acme", "sub_1", 2), nil, nil); err != nil {
			t.Fatal(err)
		}
		tokens := []lethe.SealedToken{newToken("tok_1", "acme", "sub_1", ""), newToken("tok_2", "acme", "sub_2", "")}
		if err := s.CreateTokens(t.Context(), tokens); err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // the second delete finds nothing, and is no error
			if err := s.DeleteSubject(t.Context(), "acme", "sub_1"); err != nil {
				t.Fatalf("delete %d: %v", i+1, err)
			}
		}
		_, err := s.Subject(t.Context(), "acme", "sub_1")
		wantCode(t, err, lethe.ENOTFOUND)
		_, err = s.LatestVersion(t.Context(), "acme", "sub_1")
		wantCode(t, err, lethe.ENOTFOUND)
		checkIdentifiers(t, s, "acme", "sub_1", nil)
		checkVersions(t, s, "acme", "sub_1")
		checkTokens(t, s, "acme", []string{"tok_1", "tok_2"}, tokens[1:])
		for _, id := range ids {
			checkNoHolder(t, s, "acme", id.Kind, id.Index)
		}
		// The other subject is untouched.
		checkIdentifiers(t, s, "acme", "sub_2", keptIDs)
		checkVersions(t, s, "acme", "sub_2", keptFirst)
		// The ID and the identifiers are free again.
		sub, newIDs, first := newSubject("acme", "sub_1", lethe.KindEmail)
		newIDs[0] = ids[0]
		if err := s.CreateSubject(t.Context(), sub, newIDs, first); err != nil {
			t.Fatalf("create again: %v", err)
		}
		checkVersions(t, s, "acme", "sub_1", first)
		if err := s.DeleteSubject(t.Context(), "acme", "sub_never"); err != nil {
			t.Errorf("delete a subject that never was: %v", err)
		}
	})

	t.Run("delete tenant", func(t *testing.T) {
		s := newStore(t)
		createSubject(t, s, "acme", "sub_1", lethe.KindEmail)
		createSubject(t, s, "acme", "sub_2", lethe.KindEmail)
		_, keptIDs, keptFirst := createSubject(t, s, "globex", "sub_3", lethe.KindEmail)
		if err := s.CreateTokens(t.Context(), []lethe.SealedToken{newToken("tok_1", "acme", "sub_1", "")}); err != nil {
			t.Fatal(err)
		}
		n, err := s.DeleteTenant(t.Context(), "acme")
		if err != nil || n != 2 {
			t.Fatalf("got %d, %v; want 2 subjects deleted", n, err)
		}
		for _, id := range []string{"sub_1", "sub_2"} {
			_, err := s.Subject(t.Context(), "acme", id)
			wantCode(t, err, lethe.ENOTFOUND)
			checkIdentifiers(t, s, "acme", id, nil)
			checkVersions(t, s, "acme", id)
		}
		checkTokens(t, s, "acme", []string{"tok_1"}, nil)
		checkIdentifiers(t, s, "globex", "sub_3", keptIDs)
		checkVersions(t, s, "globex", "sub_3", keptFirst)
		if n, err := s.DeleteTenant(t.Context(), "acme"); err != nil || n != 0 {
			t.Errorf("second delete: got %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("tenant isolation", func(t *testing.T) {
		s := newStore(t)
		_, bIDs, bFirst := createSubject(t, s, "b", "sub_b", lethe.KindEmail, lethe.KindPhone)
		bTokens := []lethe.SealedToken{newToken("tok_b", "b", "sub_b", lethe.KindEmail)}
		if err := s.CreateTokens(t.Context(), bTokens); err != nil {
			t.Fatal(err)
		}
		createSubject(t, s, "a", "sub_a", lethe.KindEmail)

		// Tenant a, with b's subject ID and index bytes, finds nothing…
		_, err := s.Subject(t.Context(), "a", "sub_b")
		wantCode(t, err, lethe.ENOTFOUND)
		for _, id := range bIDs {
			_, err := s.SubjectByIdentifier(t.Context(), "a", id.Kind, id.Index)
			wantCode(t, err, lethe.ENOTFOUND)
		}
		checkIdentifiers(t, s, "a", "sub_b", nil)
		_, err = s.LatestVersion(t.Context(), "a", "sub_b")
		wantCode(t, err, lethe.ENOTFOUND)
		checkVersions(t, s, "a", "sub_b")
		checkTokens(t, s, "a", []string{"tok_b"}, nil)

		// …changes nothing…
		for _, n := range []int{1, 2} {
			err = s.AppendVersion(t.Context(), newVersion("a", "sub_b", n),
				[]lethe.SealedIdentifier{newIdentifier("a", "sub_b", lethe.KindLogin)}, []string{lethe.KindEmail})
			wantCode(t, err, lethe.ENOTFOUND)
		}
		err = s.CreateTokens(t.Context(), []lethe.SealedToken{newToken("tok_a", "a", "sub_b", "")})
		wantCode(t, err, lethe.ENOTFOUND)
		if err := s.DeleteSubject(t.Context(), "a", "sub_b"); err != nil {
			t.Fatal(err)
		}

		// …and b's subject is whole.
		if _, err := s.Subject(t.Context(), "b", "sub_b"); err != nil {
			t.Errorf("b's subject: %v", err)
		}
		checkIdentifiers(t, s, "b", "sub_b", bIDs)
		checkVersions(t, s, "b", "sub_b", bFirst)
		checkTokens(t, s, "b", []string{"tok_b"}, bTokens)
		checkTokens(t, s, "a", []string{"tok_a"}, nil)

		// One subject ID, and the same identifier, in two tenants are two
		// subjects: deleting one leaves the other.
		sub, ids, first := newSubject("a", "sub_b", lethe.KindEmail)
		ids[0].Index = bIDs[0].Index
		if err := s.CreateSubject(t.Context(), sub, ids, first); err != nil {
			t.Fatal(err)
		}
		checkHolder(t, s, "a", lethe.KindEmail, bIDs[0].Index, "sub_b")
		if err := s.DeleteSubject(t.Context(), "a", "sub_b"); err != nil {
			t.Fatal(err)
		}
		checkHolder(t, s, "b", lethe.KindEmail, bIDs[0].Index, "sub_b")
		checkVersions(t, s, "b", "sub_b", bFirst)
		checkTokens(t, s, "b", []string{"tok_b"}, bTokens)
	})

	t.Run("concurrent subjects", func(t *testing.T) {
		s := newStore(t)
		const n = 64
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = subjectLifecycle(t, s, fmt.Sprintf("sub_%02d", i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("subject %d: %v", i, err)
			}
		}
	})
}

// subjectLifecycle creates subject id, reads it, changes it, tokenises and
// deletes it, returning the first error. It runs in its own goroutine, so
// it reports rather than failing the test.
func subjectLifecycle(t *testing.T, s lethe.VaultStore, id string) error {
	ctx := t.Context()
	sub, ids, first := newSubject("acme", id, lethe.KindEmail, lethe.KindPhone)
	if err := s.CreateSubject(ctx, sub, ids, first); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := s.Subject(ctx, "acme", id); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if got, err := s.SubjectByIdentifier(ctx, "acme", lethe.KindEmail, ids[0].Index); err != nil || got != id {
		return fmt.Errorf("find by email: got %v, %v, want %v", got, err, id)
	}
	if err := s.AppendVersion(ctx, newVersion("acme", id, 2), nil, nil); err != nil {
		return fmt.Errorf("append version 2: %w", err)
	}
	email := lethe.SealedIdentifier{Tenant: "acme", SubjectID: id, Kind: lethe.KindEmail, Index: index("new", id), Sealed: sealed("new", id)}
	if err := s.AppendVersion(ctx, newVersion("acme", id, 3), []lethe.SealedIdentifier{email}, []string{lethe.KindPhone}); err != nil {
		return fmt.Errorf("append version 3 with identifiers: %w", err)
	}
	if v, err := s.LatestVersion(ctx, "acme", id); err != nil || v.Version != 3 {
		return fmt.Errorf("latest version: got %v, %v, want version 3", v, err)
	}
	if got, err := s.SubjectByIdentifier(ctx, "acme", lethe.KindEmail, email.Index); err != nil || got != id {
		return fmt.Errorf("find by new email: got %v, %v, want %v", got, err, id)
	}
	if got, err := s.Identifiers(ctx, "acme", id); err != nil || len(got) != 1 {
		return fmt.Errorf("identifiers: got %d, %v, want 1", len(got), err)
	}
	tokens := []lethe.SealedToken{newToken("tok_1_"+id, "acme", id, ""), newToken("tok_2_"+id, "acme", id, "")}
	if err := s.CreateTokens(ctx, tokens); err != nil {
		return fmt.Errorf("create tokens: %w", err)
	}
	if got, err := s.Tokens(ctx, "acme", []string{tokens[0].Token, tokens[1].Token}); err != nil || len(got) != 2 {
		return fmt.Errorf("tokens: got %d, %v, want 2", len(got), err)
	}
	if err := s.DeleteSubject(ctx, "acme", id); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := s.Subject(ctx, "acme", id); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		return fmt.Errorf("get after delete: got %v, want not found", err)
	}
	return nil
}

// index returns a blind index made from parts; sealed returns a "sealed
// value". Both are arbitrary bytes, including 0x00 and 0xff.
func index(parts ...string) []byte {
	h := sha256.Sum256([]byte("index\x00" + strings.Join(parts, "\x00")))
	return append([]byte{0x00, 0xff}, h[:]...)
}

func sealed(parts ...string) []byte {
	h := sha256.Sum256([]byte("sealed\x00" + strings.Join(parts, "\x00")))
	return append([]byte{0xff, 0x00}, h[:]...)
}

// newIdentifier returns the identifier of kind of subject subjectID, with
// an index and a sealed value made from the three.
func newIdentifier(tenant, subjectID, kind string) lethe.SealedIdentifier {
	return lethe.SealedIdentifier{
		Tenant: tenant, SubjectID: subjectID, Kind: kind,
		Index:  index(tenant, subjectID, kind),
		Sealed: sealed(tenant, subjectID, kind),
	}
}

// newVersion returns version n of the subject. Its time, like every time
// here, is base (see apikey.go) or later: it has nanoseconds and a zone
// other than UTC, and stores must return it in UTC to the microsecond.
func newVersion(tenant, subjectID string, n int) *lethe.SealedVersion {
	return &lethe.SealedVersion{
		Tenant: tenant, SubjectID: subjectID, Version: n,
		Sealed:    sealed(tenant, subjectID, "version", fmt.Sprint(n)),
		Principal: fmt.Sprintf("key_%d", n),
		CreatedAt: base.Add(time.Duration(n) * time.Minute),
	}
}

func newToken(token, tenant, subjectID, field string) lethe.SealedToken {
	return lethe.SealedToken{
		Token: token, Tenant: tenant, SubjectID: subjectID, Field: field,
		Sealed:    sealed(token),
		CreatedAt: base.Add(time.Hour),
	}
}

// newSubject returns subject id of tenant with an identifier of each kind
// and its first profile version.
func newSubject(tenant, id string, kinds ...string) (*lethe.Subject, []lethe.SealedIdentifier, *lethe.SealedVersion) {
	var ids []lethe.SealedIdentifier
	for _, kind := range kinds {
		ids = append(ids, newIdentifier(tenant, id, kind))
	}
	return &lethe.Subject{ID: id, Tenant: tenant, CreatedAt: base}, ids, newVersion(tenant, id, 1)
}

// createSubject stores newSubject(tenant, id, kinds...) and returns it.
func createSubject(t *testing.T, s lethe.VaultStore, tenant, id string, kinds ...string) (*lethe.Subject, []lethe.SealedIdentifier, *lethe.SealedVersion) {
	t.Helper()
	sub, ids, first := newSubject(tenant, id, kinds...)
	if err := s.CreateSubject(t.Context(), sub, ids, first); err != nil {
		t.Fatalf("create subject %s/%s: %v", tenant, id, err)
	}
	return sub, ids, first
}

func identifiers(t *testing.T, s lethe.VaultStore, tenant, subjectID string) []lethe.SealedIdentifier {
	t.Helper()
	ids, err := s.Identifiers(t.Context(), tenant, subjectID)
	if err != nil {
		t.Fatalf("identifiers of %s/%s: %v", tenant, subjectID, err)
	}
	return ids
}

// checkIdentifiers checks that the subject's identifiers are want, which is
// ordered by kind.
func checkIdentifiers(t *testing.T, s lethe.VaultStore, tenant, subjectID string, want []lethe.SealedIdentifier) {
	t.Helper()
	got := identifiers(t, s, tenant, subjectID)
	if len(got) != len(want) {
		t.Fatalf("identifiers of %s/%s: got %d, want %d", tenant, subjectID, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Tenant != w.Tenant || g.SubjectID != w.SubjectID || g.Kind != w.Kind ||
			!bytes.Equal(g.Index, w.Index) || !bytes.Equal(g.Sealed, w.Sealed) {
			t.Errorf("identifier %d of %s/%s: got %s/%s %s %x %x, want %s/%s %s %x %x", i, tenant, subjectID,
				g.Tenant, g.SubjectID, g.Kind, g.Index, g.Sealed, w.Tenant, w.SubjectID, w.Kind, w.Index, w.Sealed)
		}
	}
}

// checkHolder checks that the tenant's identifier of kind with index is
// held by subject want.
func checkHolder(t *testing.T, s lethe.VaultStore, tenant, kind string, index []byte, want string) {
	t.Helper()
	got, err := s.SubjectByIdentifier(t.Context(), tenant, kind, index)
	if err != nil || got != want {
		t.Errorf("holder of %s %s %x: got %q, %v, want %q, <nil>", tenant, kind, index, got, err, want)
	}
}

func checkNoHolder(t *testing.T, s lethe.VaultStore, tenant, kind string, index []byte) {
	t.Helper()
	got, err := s.SubjectByIdentifier(t.Context(), tenant, kind, index)
	if lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("holder of %s %s %x: got %q, %v, want not found", tenant, kind, index, got, err)
	}
}

func checkVersion(t *testing.T, got, want *lethe.SealedVersion) {
	t.Helper()
	if got.Tenant != want.Tenant || got.SubjectID != want.SubjectID || got.Version != want.Version ||
		got.Principal != want.Principal || !bytes.Equal(got.Sealed, want.Sealed) {
		t.Errorf("version: got %s/%s %d %s %x, want %s/%s %d %s %x",
			got.Tenant, got.SubjectID, got.Version, got.Principal, got.Sealed,
			want.Tenant, want.SubjectID, want.Version, want.Principal, want.Sealed)
	}
	checkTime(t, fmt.Sprintf("version %d created_at", want.Version), &got.CreatedAt, &want.CreatedAt)
}

// checkVersions checks that the subject's versions are want, oldest first.
func checkVersions(t *testing.T, s lethe.VaultStore, tenant, subjectID string, want ...*lethe.SealedVersion) {
	t.Helper()
	got, err := s.Versions(t.Context(), tenant, subjectID)
	if err != nil {
		t.Fatalf("versions of %s/%s: %v", tenant, subjectID, err)
	}
	if len(got) != len(want) {
		t.Fatalf("versions of %s/%s: got %d, want %d", tenant, subjectID, len(got), len(want))
	}
	for i := range want {
		checkVersion(t, &got[i], want[i])
	}
}

// checkTokens checks that looking up tokens in tenant finds want, in any
// order.
func checkTokens(t *testing.T, s lethe.VaultStore, tenant string, tokens []string, want []lethe.SealedToken) {
	t.Helper()
	got, err := s.Tokens(t.Context(), tenant, tokens)
	if err != nil {
		t.Fatalf("tokens of %s: %v", tenant, err)
	}
	if len(got) != len(want) {
		t.Fatalf("tokens of %s: got %d, want %d", tenant, len(got), len(want))
	}
	byToken := make(map[string]lethe.SealedToken, len(want))
	for _, w := range want {
		byToken[w.Token] = w
	}
	for _, g := range got {
		w, ok := byToken[g.Token]
		if !ok {
			t.Errorf("tokens of %s: got %s, which is not wanted (or twice)", tenant, g.Token)
			continue
		}
		delete(byToken, g.Token)
		if g.Tenant != w.Tenant || g.SubjectID != w.SubjectID || g.Field != w.Field || !bytes.Equal(g.Sealed, w.Sealed) {
			t.Errorf("token %s: got %s/%s %q %x, want %s/%s %q %x", w.Token,
				g.Tenant, g.SubjectID, g.Field, g.Sealed, w.Tenant, w.SubjectID, w.Field, w.Sealed)
		}
		checkTime(t, "token "+w.Token+" created_at", &g.CreatedAt, &w.CreatedAt)
	}
}

// wantStale fails t unless err is lethe.ErrStaleVersion, possibly wrapped.
func wantStale(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, lethe.ErrStaleVersion) {
		t.Fatalf("got %v, want ErrStaleVersion", err)
	}
	wantCode(t, err, lethe.ECONFLICT)
}

// checkConflictMessage checks that err names kind and reveals no index or
// sealed value of ids, in any encoding.
func checkConflictMessage(t *testing.T, err error, kind string, ids ...lethe.SealedIdentifier) {
	t.Helper()
	want := "an identifier of kind " + kind + " is already held by another subject"
	if msg := lethe.ErrorMessage(err); msg != want {
		t.Errorf("message: got %q, want %q", msg, want)
	}
	s := err.Error()
	for _, id := range ids {
		for _, b := range [][]byte{id.Index, id.Sealed} {
			for _, enc := range []string{string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)} {
				if strings.Contains(strings.ToLower(s), strings.ToLower(enc)) {
					t.Errorf("error %q reveals identifier bytes", s)
				}
			}
		}
	}
}
