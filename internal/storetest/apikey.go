package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// base is a time with nanoseconds, in a zone other than UTC, to check that
// stores return times in UTC and keep at least microseconds.
var base = time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))

// TestAPIKeyStore runs the lethe.APIKeyStore contract against stores that
// newStore returns; each call must return one on a fresh database.
func TestAPIKeyStore(t *testing.T, newStore func(t *testing.T) lethe.APIKeyStore) {
	t.Run("create and get by hash", func(t *testing.T) {
		s := newStore(t)
		want := newKey("key_full", base)
		want.Tenant = "acme"
		want.ExpiresAt = ptr(base.Add(90 * 24 * time.Hour))
		want.RevokedAt = ptr(base.Add(time.Hour + 987654321))
		if err := s.CreateAPIKey(t.Context(), want); err != nil {
			t.Fatal(err)
		}
		got, err := s.APIKeyByHash(t.Context(), want.Hash)
		if err != nil {
			t.Fatal(err)
		}
		checkKey(t, got, want)
	})

	t.Run("duplicate id", func(t *testing.T) {
		s := newStore(t)
		create(t, s, newKey("key_dup", base))
		dup := newKey("key_dup", base)
		dup.Hash = sha256Of("another secret")
		err := s.CreateAPIKey(t.Context(), dup)
		wantCode(t, err, lethe.ECONFLICT)
		checkMessage(t, err, dup)
	})

	t.Run("duplicate hash", func(t *testing.T) {
		s := newStore(t)
		first := newKey("key_first", base)
		create(t, s, first)
		dup := newKey("key_second", base)
		dup.Hash = first.Hash
		err := s.CreateAPIKey(t.Context(), dup)
		wantCode(t, err, lethe.ECONFLICT)
		checkMessage(t, err, dup)
	})

	t.Run("unknown hash", func(t *testing.T) {
		s := newStore(t)
		create(t, s, newKey("key_known", base))
		unknown := sha256Of("unknown")
		_, err := s.APIKeyByHash(t.Context(), unknown)
		wantCode(t, err, lethe.ENOTFOUND)
		checkMessage(t, err, &lethe.APIKey{Hash: unknown})
	})

	t.Run("list oldest first", func(t *testing.T) {
		s := newStore(t)
		if keys, err := s.APIKeys(t.Context()); err != nil || len(keys) != 0 {
			t.Fatalf("empty store: got %d keys, %v, want 0, <nil>", len(keys), err)
		}
		var want []*lethe.APIKey
		for i, offset := range []time.Duration{time.Hour, time.Microsecond, 0, 2 * time.Hour} {
			k := newKey(fmt.Sprintf("key_%d", i), base.Add(offset))
			create(t, s, k)
			want = append(want, k)
		}
		want = []*lethe.APIKey{want[2], want[1], want[0], want[3]}
		got, err := s.APIKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d keys, want %d", len(got), len(want))
		}
		for i := range want {
			checkKey(t, got[i], want[i])
		}
	})

	t.Run("revoke", func(t *testing.T) {
		s := newStore(t)
		k := newKey("key_revoke", base)
		create(t, s, k)
		first, second := base.Add(time.Minute), base.Add(time.Hour)
		for _, at := range []time.Time{first, second} {
			if err := s.RevokeAPIKey(t.Context(), k.ID, at); err != nil {
				t.Fatalf("revoke at %v: %v", at, err)
			}
			got, err := s.APIKeyByHash(t.Context(), k.Hash)
			if err != nil {
				t.Fatal(err)
			}
			checkTime(t, "revoked_at", got.RevokedAt, &first)
		}
		err := s.RevokeAPIKey(t.Context(), "key_unknown", first)
		wantCode(t, err, lethe.ENOTFOUND)
		if msg := lethe.ErrorMessage(err); !strings.Contains(msg, "key_unknown") {
			t.Errorf("message: got %q, want it to name key_unknown", msg)
		}
	})

	t.Run("expiry preserved", func(t *testing.T) {
		s := newStore(t)
		for i, expires := range []*time.Time{
			nil,
			ptr(base.Add(24 * time.Hour)),
			ptr(time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)),
		} {
			k := newKey(fmt.Sprintf("key_expires_%d", i), base)
			k.ExpiresAt = expires
			create(t, s, k)
			got, err := s.APIKeyByHash(t.Context(), k.Hash)
			if err != nil {
				t.Fatal(err)
			}
			checkTime(t, "expires_at", got.ExpiresAt, expires)
		}
	})

	t.Run("active", func(t *testing.T) {
		s := newStore(t)
		at := base.Add(time.Hour).Truncate(time.Microsecond)
		expiring := newKey("key_expiring", base)
		expiring.ExpiresAt = &at
		revoked := newKey("key_revoked", base)
		create(t, s, expiring)
		create(t, s, revoked)
		if err := s.RevokeAPIKey(t.Context(), revoked.ID, at); err != nil {
			t.Fatal(err)
		}
		for _, k := range []*lethe.APIKey{expiring, revoked} {
			got, err := s.APIKeyByHash(t.Context(), k.Hash)
			if err != nil {
				t.Fatal(err)
			}
			for now, want := range map[time.Time]bool{
				at.Add(-time.Microsecond): true,
				at:                        false,
				at.Add(time.Microsecond):  false,
			} {
				if active := got.Active(now); active != want {
					t.Errorf("%s active at %v: got %v, want %v", k.ID, now, active, want)
				}
			}
		}
	})

	t.Run("concurrent creates", func(t *testing.T) {
		s := newStore(t)
		const n = 50
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.CreateAPIKey(t.Context(), newKey(fmt.Sprintf("key_%02d", i), base)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("create %d: %v", i, err)
			}
		}
		if keys, err := s.APIKeys(t.Context()); err != nil || len(keys) != n {
			t.Errorf("list: got %d keys, %v, want %d, <nil>", len(keys), err, n)
		}
	})
}

// newKey returns a key with the given ID, created at created, whose secret
// hash is derived from the ID.
func newKey(id string, created time.Time) *lethe.APIKey {
	return &lethe.APIKey{
		ID:        id,
		Name:      "name of " + id,
		Role:      lethe.RoleService,
		Hash:      sha256Of("secret of " + id),
		CreatedAt: created,
	}
}

func create(t *testing.T, s lethe.APIKeyStore, k *lethe.APIKey) {
	t.Helper()
	if err := s.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatalf("create %s: %v", k.ID, err)
	}
}

func sha256Of(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func ptr[T any](v T) *T { return &v }

func checkKey(t *testing.T, got, want *lethe.APIKey) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Role != want.Role || !bytes.Equal(got.Hash, want.Hash) {
		t.Errorf("key: got %s %q %s %x, want %s %q %s %x",
			got.ID, got.Name, got.Role, got.Hash, want.ID, want.Name, want.Role, want.Hash)
	}
	checkTime(t, want.ID+" created_at", &got.CreatedAt, &want.CreatedAt)
	checkTime(t, want.ID+" expires_at", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, want.ID+" revoked_at", got.RevokedAt, want.RevokedAt)
}

// checkTime checks that got is nil if want is, and otherwise a UTC time
// equal to want at least to the microsecond.
func checkTime(t *testing.T, field string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil || want == nil:
		if got != want {
			t.Errorf("%s: got %v, want %v", field, got, want)
		}
	case !got.Truncate(time.Microsecond).Equal(want.Truncate(time.Microsecond)):
		t.Errorf("%s: got %v, want %v", field, got, want)
	case got.Location() != time.UTC:
		t.Errorf("%s location: got %v, want %v", field, got.Location(), time.UTC)
	}
}

// checkMessage checks that err names k's ID, if it has one, and never
// reveals its hash.
func checkMessage(t *testing.T, err error, k *lethe.APIKey) {
	t.Helper()
	if msg := lethe.ErrorMessage(err); k.ID != "" && !strings.Contains(msg, k.ID) {
		t.Errorf("message: got %q, want it to name %s", msg, k.ID)
	}
	if s := err.Error(); strings.Contains(s, string(k.Hash)) || strings.Contains(strings.ToLower(s), hex.EncodeToString(k.Hash)) {
		t.Errorf("error %q reveals the key hash", s)
	}
}
