package vault_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/postgres"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/testsvc"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// tenantKeys returns r's key store as RotateTenantKey takes it.
func (r *rotation) tenantKeys(t *testing.T) vault.TenantKeyStore {
	t.Helper()
	tk, ok := r.keys.(vault.TenantKeyStore)
	if !ok {
		t.Fatalf("%T does not implement vault.TenantKeyStore", r.keys)
	}
	return tk
}

// checkTenantRotated checks that every subject key of tenant is under
// version, the tenant's current one, and that no older version is left.
func (r *rotation) checkTenantRotated(t *testing.T, tenant string, version int) {
	t.Helper()
	tk := r.tenantKeys(t)
	if n, err := tk.CountStaleSubjectKeys(t.Context(), tenant, version); err != nil || n != 0 {
		t.Errorf("subject keys of %s not under version %d: got %v, %v, want 0", tenant, version, n, err)
	}
	if w, err := tk.TenantKey(t.Context(), tenant); err != nil || w.Version != version {
		t.Errorf("current key of %s: got %+v, %v, want version %d", tenant, w, err, version)
	}
	for v := 1; v < version; v++ {
		if _, err := tk.TenantKeyVersion(t.Context(), tenant, v); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			t.Errorf("version %d of %s: got %v, want it deleted", v, tenant, err)
		}
	}
}

func TestRotateTenantKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		before := r.subjectKeys(t)
		acmeKey, err := r.keys.TenantKey(t.Context(), "acme")
		if err != nil || acmeKey.Version != 1 {
			t.Fatalf("acme's first key: got %+v, %v, want version 1", acmeKey, err)
		}
		globexKey, err := r.keys.TenantKey(t.Context(), "globex")
		if err != nil {
			t.Fatal(err)
		}

		var calls [][2]int
		got, err := vault.RotateTenantKey(t.Context(), r.kms, r.tenantKeys(t), "acme", func(done, total int) { calls = append(calls, [2]int{done, total}) })
		if err != nil {
			t.Fatal(err)
		}
		if want := (vault.TenantRotation{Tenant: "acme", Version: 2, Rewrapped: 2, Deleted: 1}); got != want {
			t.Errorf("rotation: got %+v, want %+v", got, want)
		}
		if want := [][2]int{{0, 2}, {2, 2}}; fmt.Sprint(calls) != fmt.Sprint(want) {
			t.Errorf("progress: got %v, want %v", calls, want)
		}
		r.checkTenantRotated(t, "acme", 2)
		newKey, err := r.keys.TenantKey(t.Context(), "acme")
		if err != nil || bytes.Equal(newKey.Wrapped, acmeKey.Wrapped) || newKey.KEKID != r.kms.CurrentID() {
			t.Errorf("acme's new key: got %+v, %v, want new bytes under the current master key", newKey, err)
		}
		for id, w := range r.subjectKeys(t) {
			b := before[id]
			switch r.subjects[id] {
			case "acme":
				if bytes.Equal(w.Wrapped, b.Wrapped) || w.KEKID != lethe.TenantKEKID("acme", 2) || !w.CreatedAt.Equal(b.CreatedAt) {
					t.Errorf("acme's subject %s: got %x under %s, want it rewrapped under version 2 with its creation time", id, w.Wrapped, w.KEKID)
				}
			default:
				if !bytes.Equal(w.Wrapped, b.Wrapped) || w.KEKID != b.KEKID {
					t.Errorf("globex's subject %s changed", id)
				}
			}
		}
		if w, err := r.keys.TenantKey(t.Context(), "globex"); err != nil || !bytes.Equal(w.Wrapped, globexKey.Wrapped) || w.Version != 1 {
			t.Errorf("globex's key: got %+v, %v, want it unchanged", w, err)
		}

		// The serving instance still holds version 1 as current; it reads
		// its cached subject keys, and a create it wraps under version 1
		// is refused and retried under version 2.
		r.checkReadable(t, r.v)
		r.create(t, r.v, "acme", 20)
		r.checkTenantRotated(t, "acme", 2)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))

		// Again: version 3, and the subject made meanwhile is rewrapped too.
		got, err = vault.RotateTenantKey(t.Context(), openKMS(t, r.path), r.tenantKeys(t), "acme", nil)
		if want := (vault.TenantRotation{Tenant: "acme", Version: 3, Rewrapped: 3, Deleted: 1}); err != nil || got != want {
			t.Fatalf("second rotation: got %+v, %v, want %+v", got, err, want)
		}
		r.checkTenantRotated(t, "acme", 3)
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
	})
}

// TestRotateTenantKeyOnline rotates a tenant of 500 subjects while 16
// goroutines keep creating, reading and finding subjects of that tenant
// through a serving instance, which learns of the rotation only from the
// key store, as a server beside "lethe keys rotate-tenant" does.
func TestRotateTenantKeyOnline(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		const initial, workers = 500, 16
		var mu sync.Mutex
		subjects := map[string]int{} // acme subject ID → its number (email)
		add := func(id string, n int) {
			mu.Lock()
			subjects[id] = n
			mu.Unlock()
		}
		create := func(v *vault.Service, n int) (string, error) {
			s, err := v.CreateSubject(t.Context(), actor, lethe.NewSubject{
				Tenant: "acme", Identifiers: map[string]string{"email": email(n)}, Profile: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
			})
			if err != nil {
				return "", err
			}
			return s.ID, nil
		}
		check := func(v *vault.Service, id string, n int) error {
			got, err := v.ReadSubject(t.Context(), actor, "acme", id, lethe.ReadOptions{})
			if err != nil {
				return fmt.Errorf("read %s: %w", id, err)
			}
			if got.Identifiers["email"] != email(n) || string(got.Profile) != fmt.Sprintf(`{"n":%d}`, n) {
				return fmt.Errorf("read %s: got %v %s, want subject %d", id, got.Identifiers, got.Profile, n)
			}
			return nil
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for n := 1000 + w; n < 1000+initial; n += workers {
					id, err := create(r.v, n)
					if err != nil {
						t.Errorf("create %d: %v", n, err)
						return
					}
					add(id, n)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		ids := make([]string, 0, len(subjects))
		for id := range subjects {
			ids = append(ids, id)
		}
		erased := ids[0]
		if _, err := r.v.EraseSubject(t.Context(), actor, "acme", erased); err != nil {
			t.Fatal(err)
		}
		delete(subjects, erased)
		ids = ids[1:]

		// The instance serving meanwhile starts with cold caches, and
		// counts the creates the key store refuses for a stale version.
		counted := &staleCounter{KeyStore: r.keys}
		server, err := vault.New(t.Context(), vault.Config{Store: r.store, Keys: counted, KMS: openKMS(t, r.path), Audit: &recorder{}})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var ops atomic.Int64
		errs := make(chan error, workers)
		var erasedDuring atomic.Value
		for w := range workers {
			wg.Go(func() {
				rnd := rand.New(rand.NewPCG(uint64(w), 1))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					n := 10_000 + w*10_000 + i
					id, err := create(server, n)
					if err != nil {
						errs <- fmt.Errorf("create during the rotation: %w", err)
						return
					}
					if err := check(server, id, n); err != nil {
						errs <- err
						return
					}
					if w == 0 && i == 3 {
						// An erasure during the rotation, of a subject
						// made during it.
						if _, err := server.EraseSubject(t.Context(), actor, "acme", id); err != nil {
							errs <- err
							return
						}
						erasedDuring.Store(id)
					} else {
						add(id, n)
					}
					old := ids[rnd.IntN(len(ids))]
					mu.Lock()
					on := subjects[old]
					mu.Unlock()
					if err := check(server, old, on); err != nil {
						errs <- fmt.Errorf("during the rotation: %w", err)
						return
					}
					if found, err := findID(server, t.Context(), actor, "acme", "email", email(on)); err != nil || found != old {
						errs <- fmt.Errorf("find %s during the rotation: got %s, %v", old, found, err)
						return
					}
					ops.Add(1)
				}
			})
		}
		// Let the workers run before, between the new version and the
		// rewrap, and after.
		waitOps := func(n int64) {
			for start := ops.Load(); ops.Load() < start+n; {
				time.Sleep(time.Millisecond)
			}
		}
		waitOps(workers)
		got, err := vault.RotateTenantKey(t.Context(), openKMS(t, r.path), r.tenantKeys(t), "acme", func(done, total int) {
			if done == 0 {
				waitOps(2 * workers)
			}
		})
		waitOps(2 * workers)
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if err != nil {
			t.Fatalf("rotation: got %+v, %v", got, err)
		}
		if got.Version != 2 || got.Resumed || got.Deleted != 1 || got.Rewrapped < initial-1 {
			t.Errorf("rotation: got %+v, want version 2, at least %d keys rewrapped and version 1 deleted", got, initial-1)
		}
		t.Logf("rotation %+v beside %d reads and creates (%d retried under the new version); %d subjects", got, ops.Load(), counted.stale.Load(), len(subjects))
		r.checkTenantRotated(t, "acme", 2)

		for _, v := range []*vault.Service{server, r.v, r.service(t, openKMS(t, r.path))} {
			for id, n := range subjects {
				if err := check(v, id, n); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{erased, erasedDuring.Load().(string)} {
				if _, err := v.ReadSubject(t.Context(), actor, "acme", id, lethe.ReadOptions{}); lethe.ErrorCode(err) != lethe.EGONE {
					t.Errorf("erased subject %s: got %v, want gone", id, err)
				}
			}
		}
		r.checkReadable(t, r.v) // the fixture's subjects, globex's too
	})
}

// staleCounter is a key store that counts the subject keys it refuses
// because their tenant-key version is no longer current.
type staleCounter struct {
	lethe.KeyStore
	stale atomic.Int64
}

func (c *staleCounter) CreateSubjectKey(ctx context.Context, tenant, subjectID string, k *lethe.WrappedKey) error {
	err := c.KeyStore.CreateSubjectKey(ctx, tenant, subjectID, k)
	if errors.Is(err, lethe.ErrStaleTenantKey) {
		c.stale.Add(1)
	}
	return err
}

// failingRotator is a key store on which other processes act at chosen
// points of a rotation.
type failingRotator struct {
	vault.TenantKeyStore
	beforeAdd, beforeList func()
}

func (f *failingRotator) AddTenantKeyVersion(ctx context.Context, tenant string, k *lethe.WrappedKey) error {
	if f.beforeAdd != nil {
		f.beforeAdd()
		f.beforeAdd = nil
	}
	return f.TenantKeyStore.AddTenantKeyVersion(ctx, tenant, k)
}

func (f *failingRotator) StaleSubjectKeys(ctx context.Context, tenant string, version int, after string, limit int) ([]lethe.StaleSubjectKey, error) {
	if f.beforeList != nil {
		f.beforeList()
		f.beforeList = nil
	}
	return f.TenantKeyStore.StaleSubjectKeys(ctx, tenant, version, after, limit)
}

// TestRotateTenantKeyResumes interrupts rotations and finishes them by
// running the rotation again.
func TestRotateTenantKeyResumes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		tk := r.tenantKeys(t)

		// Interrupted between adding version 2 and rewrapping.
		ctx, cancel := context.WithCancel(t.Context())
		partial, err := vault.RotateTenantKey(ctx, r.kms, tk, "acme", func(done, _ int) {
			if done == 0 {
				cancel()
			}
		})
		if err == nil || partial.Version != 2 || partial.Rewrapped != 0 {
			t.Fatalf("interrupted rotation: got %+v, %v, want an error after adding version 2", partial, err)
		}
		if !strings.Contains(err.Error(), "run the rotation again") {
			t.Errorf("interrupted rotation: got %q, want it to say how to finish", err)
		}
		// Both versions are in use, and everything works.
		if n, err := tk.CountStaleSubjectKeys(t.Context(), "acme", 2); err != nil || n != 2 {
			t.Fatalf("keys under version 1: got %v, %v, want 2", n, err)
		}
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
		r.create(t, r.v, "acme", 20)

		finished, err := vault.RotateTenantKey(t.Context(), r.kms, tk, "acme", nil)
		if want := (vault.TenantRotation{Tenant: "acme", Version: 2, Resumed: true, Rewrapped: 2, Deleted: 1}); err != nil || finished != want {
			t.Fatalf("finish: got %+v, %v, want %+v", finished, err, want)
		}
		r.checkTenantRotated(t, "acme", 2)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))

		// Another rotation adds version 3 between this one's read of the
		// current version and its own add: this one stops, changing
		// nothing, and the other's is finished by running it again.
		racing := &failingRotator{TenantKeyStore: tk, beforeAdd: func() {
			w, kek, err := r.kms.Wrap(t.Context(), vault.NewKey(), vault.AD("tenant-key", "acme"))
			if err != nil {
				t.Fatal(err)
			}
			if err := tk.AddTenantKeyVersion(t.Context(), "acme", &lethe.WrappedKey{Wrapped: w, KEKID: kek, Version: 3}); err != nil {
				t.Fatal(err)
			}
		}}
		lost, err := vault.RotateTenantKey(t.Context(), r.kms, racing, "acme", nil)
		if lethe.ErrorCode(err) != lethe.ECONFLICT || lost.Version != 0 {
			t.Fatalf("racing rotation: got %+v, %v, want a conflict", lost, err)
		}
		r.checkReadable(t, r.v)
		got, err := vault.RotateTenantKey(t.Context(), r.kms, tk, "acme", nil)
		if want := (vault.TenantRotation{Tenant: "acme", Version: 3, Resumed: true, Rewrapped: 3, Deleted: 1}); err != nil || got != want {
			t.Fatalf("finish the other: got %+v, %v, want %+v", got, err, want)
		}

		// Another rotation adds version 5 while this one (to 4) rewraps:
		// its rewraps are refused, it stops, and running it again finishes
		// version 5.
		racing = &failingRotator{TenantKeyStore: tk, beforeList: func() {
			w, kek, err := r.kms.Wrap(t.Context(), vault.NewKey(), vault.AD("tenant-key", "acme"))
			if err != nil {
				t.Fatal(err)
			}
			if err := tk.AddTenantKeyVersion(t.Context(), "acme", &lethe.WrappedKey{Wrapped: w, KEKID: kek, Version: 5}); err != nil {
				t.Fatal(err)
			}
		}}
		lost, err = vault.RotateTenantKey(t.Context(), r.kms, racing, "acme", nil)
		if lethe.ErrorCode(err) != lethe.ECONFLICT || lost.Version != 4 || lost.Rewrapped != 0 {
			t.Fatalf("rotation overtaken while rewrapping: got %+v, %v, want a conflict", lost, err)
		}
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
		got, err = vault.RotateTenantKey(t.Context(), r.kms, tk, "acme", nil)
		if want := (vault.TenantRotation{Tenant: "acme", Version: 5, Resumed: true, Rewrapped: 3, Deleted: 2}); err != nil || got != want {
			t.Fatalf("finish version 5: got %+v, %v, want %+v", got, err, want)
		}
		r.checkTenantRotated(t, "acme", 5)
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))

		// Finished: running it again rotates again.
		got, err = vault.RotateTenantKey(t.Context(), r.kms, tk, "acme", nil)
		if want := (vault.TenantRotation{Tenant: "acme", Version: 6, Rewrapped: 3, Deleted: 1}); err != nil || got != want {
			t.Fatalf("rotate again: got %+v, %v, want %+v", got, err, want)
		}
	})
}

// TestRotateTenantKeyReportsUnopenable stores a subject key no version of
// the tenant's key opens: the others are rewrapped, the error names it, and
// the old version is kept.
func TestRotateTenantKeyReportsUnopenable(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		broken := &lethe.WrappedKey{Wrapped: vault.WrapKey(&vault.Key{}, vault.NewKey(), []byte("elsewhere")), KEKID: lethe.TenantKEKID("acme", 1)}
		if err := r.keys.CreateSubjectKey(t.Context(), "acme", "sub_broken", broken); err != nil {
			t.Fatal(err)
		}
		got, err := vault.RotateTenantKey(t.Context(), r.kms, r.tenantKeys(t), "acme", nil)
		if err == nil || got.Rewrapped != 2 || got.Deleted != 0 {
			t.Fatalf("rotate: got %+v, %v, want 2 keys rewrapped and an error", got, err)
		}
		for _, want := range []string{"1 subject keys could not be opened", "subject sub_broken", "run the rotation again"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q, want it to contain %q", err, want)
			}
		}
		if _, err := r.keys.TenantKeyVersion(t.Context(), "acme", 1); err != nil {
			t.Errorf("version 1: got %v, want it kept", err)
		}
		r.checkReadable(t, r.v)
		// Once the broken key is gone, running it again finishes.
		if err := r.keys.DestroySubjectKey(t.Context(), "acme", "sub_broken", time.Now()); err != nil {
			t.Fatal(err)
		}
		got, err = vault.RotateTenantKey(t.Context(), r.kms, r.tenantKeys(t), "acme", nil)
		if want := (vault.TenantRotation{Tenant: "acme", Version: 2, Resumed: true, Deleted: 1}); err != nil || got != want {
			t.Fatalf("finish: got %+v, %v, want %+v", got, err, want)
		}
	})
}

func TestRotateTenantKeyRefuses(t *testing.T) {
	r := newRotation(t, engines()[0])
	tk := r.tenantKeys(t)
	if _, err := r.v.EraseTenant(t.Context(), actor, "globex"); err != nil {
		t.Fatal(err)
	}
	foreign := openKMS(t, filepath.Join(t.TempDir(), "other.key"))
	for _, c := range []struct {
		name, tenant string
		kms          vault.KMS
		code, msg    string
	}{
		{"an invalid name", "Acme!", r.kms, lethe.EINVALID, "tenant must be"},
		{"a tenant with no key", "initech", r.kms, lethe.ENOTFOUND, "nothing to rotate"},
		{"an erased tenant", "globex", r.kms, lethe.EGONE, "erased"},
		{"another deployment's master key", "acme", foreign, lethe.EINTERNAL, "cannot open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := vault.RotateTenantKey(t.Context(), c.kms, tk, c.tenant, nil)
			if lethe.ErrorCode(err) != c.code || !strings.Contains(err.Error(), c.msg) || got.Version != 0 {
				t.Errorf("got %+v, %v, want code %s and %q", got, err, c.code, c.msg)
			}
		})
	}
	if w, err := r.keys.TenantKey(t.Context(), "acme"); err != nil || w.Version != 1 {
		t.Errorf("acme's key: got %+v, %v, want version 1 alone", w, err)
	}
}

// TestRotateMasterRewrapsTenantKeyVersions rotates the master key while a
// tenant-key rotation is unfinished: every version of the tenant's key is
// rewrapped, and the tenant rotation then finishes under the new master
// key.
func TestRotateMasterRewrapsTenantKeyVersions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		ctx, cancel := context.WithCancel(t.Context())
		if _, err := vault.RotateTenantKey(ctx, r.kms, r.tenantKeys(t), "acme", func(int, int) { cancel() }); err == nil {
			t.Fatal("interrupted tenant rotation: got no error")
		}
		// Two secrets, acme's two versions and globex's key.
		if n, err := r.rw.CountStaleWrappedKeys(t.Context(), "unused"); err != nil || n != 5 {
			t.Fatalf("master-wrapped keys: got %v, %v, want 5", n, err)
		}
		got, err := vault.RotateMaster(t.Context(), r.kms, r.path, r.rw, nil)
		if err != nil || got.Rewrapped != 5 {
			t.Fatalf("rotate master: got %+v, %v, want 5 keys rewrapped", got, err)
		}
		for v := 1; v <= 2; v++ {
			w, err := r.keys.TenantKeyVersion(t.Context(), "acme", v)
			if err != nil || w.KEKID != got.KEKID {
				t.Errorf("acme's version %d: got %+v, %v, want it under %s", v, w, err, got.KEKID)
			}
		}
		r.checkAllUnder(t, got.KEKID)
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
		finished, err := vault.RotateTenantKey(t.Context(), openKMS(t, r.path), r.tenantKeys(t), "acme", nil)
		if err != nil || !finished.Resumed || finished.Rewrapped != 2 {
			t.Fatalf("finish the tenant rotation: got %+v, %v", finished, err)
		}
		r.checkTenantRotated(t, "acme", 2)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
	})
}

// TestLegacySubjectKeyIDs opens a key store whose subject keys carry the
// key ID from before tenant keys had versions, "tenant:<tenant>": they
// read as version 1, and a rotation moves them.
func TestLegacySubjectKeyIDs(t *testing.T) {
	dir := t.TempDir()
	data, err := sqlite.OpenData(t.Context(), filepath.Join(dir, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(t.Context(), filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close(); keysDB.Close() })
	keys := sqlite.NewKeyStore(keysDB)
	r := &rotation{path: filepath.Join(dir, "master.key"), store: sqlite.NewVaultStore(data), keys: keys, rw: keys, subjects: map[string]string{}}
	r.kms = openKMS(t, r.path)
	r.v = r.service(t, r.kms)
	for i := range 3 {
		r.create(t, r.v, "acme", i)
	}
	// Rewrite the key IDs as the previous release stored them.
	db, err := sql.Open("sqlite", filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if res, err := db.ExecContext(t.Context(), `UPDATE subject_keys SET kek_id = 'tenant:acme'`); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 3 {
		t.Fatalf("rewrote %d key IDs, want 3", n)
	}
	r.checkReadable(t, r.service(t, openKMS(t, r.path)))
	got, err := vault.RotateTenantKey(t.Context(), r.kms, keys, "acme", nil)
	if want := (vault.TenantRotation{Tenant: "acme", Version: 2, Rewrapped: 3, Deleted: 1}); err != nil || got != want {
		t.Fatalf("rotate: got %+v, %v, want %+v", got, err, want)
	}
	r.checkTenantRotated(t, "acme", 2)
	r.checkReadable(t, r.service(t, openKMS(t, r.path)))
	r.checkReadable(t, r.v)
}

// BenchmarkRotateTenantKey rotates the key of a tenant with 10,000
// subjects: one unwrap and one wrap of each subject key, and a
// compare-and-swap of each in a transaction per page. Each iteration is a
// whole rotation (the next version, every key rewrapped, the older version
// deleted); keys/s is subject keys rewrapped per second.
func BenchmarkRotateTenantKey(b *testing.B) {
	const subjects = 10_000
	for _, engine := range []struct {
		name string
		open func(b *testing.B) vault.TenantKeyStore
	}{
		{"sqlite", func(b *testing.B) vault.TenantKeyStore {
			db, err := sqlite.OpenKeys(b.Context(), filepath.Join(b.TempDir(), "keys.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return sqlite.NewKeyStore(db)
		}},
		{"postgres", func(b *testing.B) vault.TenantKeyStore {
			db, err := postgres.OpenKeys(b.Context(), testsvc.Postgres(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return postgres.NewKeyStore(db)
		}},
	} {
		b.Run(engine.name, func(b *testing.B) {
			ctx := context.Background()
			keys := engine.open(b)
			ks := keys.(lethe.KeyStore)
			kms, _, err := vault.OpenLocalKMS(filepath.Join(b.TempDir(), "master.key"), "")
			if err != nil {
				b.Fatal(err)
			}
			tenantKey := vault.NewKey()
			w, kek, err := kms.Wrap(ctx, tenantKey, vault.AD("tenant-key", "acme"))
			if err != nil {
				b.Fatal(err)
			}
			if err := ks.CreateTenantKey(ctx, "acme", &lethe.WrappedKey{Wrapped: w, KEKID: kek, CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			// Fill in parallel, so that SQLite's group commit shares the
			// syncs.
			var wg sync.WaitGroup
			const fillers = 64
			for f := range fillers {
				wg.Go(func() {
					for i := f; i < subjects; i += fillers {
						id := vault.NewSubjectID()
						k := &lethe.WrappedKey{Wrapped: vault.WrapKey(&tenantKey, vault.NewKey(), vault.AD("subject-key", "acme", id)),
							KEKID: lethe.TenantKEKID("acme", 1), CreatedAt: time.Now()}
						if err := ks.CreateSubjectKey(ctx, "acme", id, k); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if b.Failed() {
				b.FailNow()
			}
			for b.Loop() {
				r, err := vault.RotateTenantKey(ctx, kms, keys, "acme", nil)
				if err != nil || r.Rewrapped != subjects {
					b.Fatalf("rotation: got %+v, %v, want %d keys rewrapped", r, err, subjects)
				}
			}
			b.ReportMetric(float64(b.N*subjects)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}
