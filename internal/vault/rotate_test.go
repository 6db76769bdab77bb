package vault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// rotation is a deployment whose master key is a keyring file, with some
// subjects in two tenants.
type rotation struct {
	path     string // the keyring file
	store    lethe.VaultStore
	keys     lethe.KeyStore
	rw       lethe.KeyRewrapper
	kms      *vault.LocalKMS // the serving instance's
	v        *vault.Service
	subjects map[string]string // subject ID → tenant
}

func newRotation(t *testing.T, e engine) *rotation {
	t.Helper()
	store, keys, _ := e.open(t)
	rw, ok := keys.(lethe.KeyRewrapper)
	if !ok {
		t.Fatalf("%s key store: %T does not implement lethe.KeyRewrapper", e.name, keys)
	}
	r := &rotation{path: filepath.Join(t.TempDir(), "master.key"), store: store, keys: keys, rw: rw, subjects: map[string]string{}}
	r.kms = openKMS(t, r.path)
	r.v = r.service(t, r.kms)
	for i, tenant := range []string{"acme", "acme", "globex"} {
		r.create(t, r.v, tenant, i)
	}
	return r
}

func openKMS(t *testing.T, path string) *vault.LocalKMS {
	t.Helper()
	kms, _, err := vault.OpenLocalKMS(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return kms
}

// service opens a Service on r's stores, with its own caches.
func (r *rotation) service(t *testing.T, kms vault.KMS) *vault.Service {
	t.Helper()
	v, err := vault.New(t.Context(), vault.Config{Store: r.store, Keys: r.keys, KMS: kms, Audit: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func email(i int) string { return fmt.Sprintf("person%d@example.com", i) }

func (r *rotation) create(t *testing.T, v *vault.Service, tenant string, i int) {
	t.Helper()
	s, err := v.CreateSubject(t.Context(), actor, lethe.NewSubject{
		Tenant: tenant, Identifiers: map[string]string{"email": email(i)}, Profile: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
	})
	if err != nil {
		t.Fatalf("create subject %d in %s: %v", i, tenant, err)
	}
	r.subjects[s.ID] = tenant
}

// checkReadable reads and finds every subject through v.
func (r *rotation) checkReadable(t *testing.T, v *vault.Service) {
	t.Helper()
	for id, tenant := range r.subjects {
		got, err := v.ReadSubject(t.Context(), actor, tenant, id, lethe.ReadOptions{})
		if err != nil {
			t.Fatalf("read %s in %s: %v", id, tenant, err)
		}
		found, err := findID(v, t.Context(), actor, tenant, "email", got.Identifiers["email"])
		if err != nil || found != id {
			t.Fatalf("find %s in %s: got %s, %v", id, tenant, found, err)
		}
	}
}

// masterWrapped returns every deployment secret and tenant key, by
// "kind name".
func (r *rotation) masterWrapped(t *testing.T) map[string]*lethe.WrappedKey {
	t.Helper()
	out := map[string]*lethe.WrappedKey{}
	for _, name := range []string{"blind-index-root", "token-root"} {
		w, err := r.keys.Secret(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		out[lethe.StaleSecret+" "+name] = w
	}
	tenants := map[string]bool{}
	for _, tenant := range r.subjects {
		tenants[tenant] = true
	}
	for tenant := range tenants {
		w, err := r.keys.TenantKey(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		out[lethe.StaleTenantKey+" "+tenant] = w
	}
	return out
}

// checkAllUnder checks that every secret and tenant key is wrapped under
// kek and that the key store agrees nothing is stale.
func (r *rotation) checkAllUnder(t *testing.T, kek string) {
	t.Helper()
	for name, w := range r.masterWrapped(t) {
		if w.KEKID != kek {
			t.Errorf("%s: got kek %s, want %s", name, w.KEKID, kek)
		}
	}
	if n, err := r.rw.CountStaleWrappedKeys(t.Context(), kek); err != nil || n != 0 {
		t.Errorf("stale keys: got %v, %v, want 0, <nil>", n, err)
	}
}

// keyringIDs returns the key IDs of the keyring file, oldest first.
func keyringIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var ids []string
	for _, l := range lines[1:] {
		id, _, _ := strings.Cut(l, " ")
		ids = append(ids, id)
	}
	return ids
}

// subjectKeys returns the wrapped keys of r's subjects.
func (r *rotation) subjectKeys(t *testing.T) map[string]*lethe.WrappedKey {
	t.Helper()
	out := map[string]*lethe.WrappedKey{}
	for id, tenant := range r.subjects {
		w, err := r.keys.SubjectKey(t.Context(), tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = w
	}
	return out
}

func TestRotateMaster(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		oldID := r.kms.CurrentID()
		before, subjectsBefore := r.masterWrapped(t), r.subjectKeys(t)
		r.checkAllUnder(t, oldID)

		var calls [][2]int
		got, err := vault.RotateMaster(t.Context(), r.kms, r.path, r.rw, func(done, total int) { calls = append(calls, [2]int{done, total}) })
		if err != nil {
			t.Fatal(err)
		}
		// Two secrets and two tenant keys; subject keys are not the
		// master key's.
		want := vault.Rotation{KEKID: r.kms.CurrentID(), Rewrapped: 4}
		if got != want || got.KEKID == oldID {
			t.Fatalf("rotation: got %+v, want %+v (old key %s)", got, want, oldID)
		}
		if wantCalls := [][2]int{{0, 4}, {1, 4}, {2, 4}, {3, 4}, {4, 4}}; fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
			t.Errorf("progress: got %v, want %v", calls, wantCalls)
		}
		r.checkAllUnder(t, got.KEKID)
		for name, w := range r.masterWrapped(t) {
			if bytes.Equal(w.Wrapped, before[name].Wrapped) || !w.CreatedAt.Equal(before[name].CreatedAt) {
				t.Errorf("%s: got the same bytes or another creation time, want new bytes and the same time", name)
			}
		}
		for id, w := range r.subjectKeys(t) {
			if !bytes.Equal(w.Wrapped, subjectsBefore[id].Wrapped) || w.KEKID != subjectsBefore[id].KEKID {
				t.Errorf("subject key %s changed", id)
			}
		}
		if ids := keyringIDs(t, r.path); len(ids) != 2 || ids[0] != oldID || ids[1] != got.KEKID {
			t.Errorf("keyring: got %v, want [%s %s]: the old key kept, the new one current", ids, oldID, got.KEKID)
		}

		// The running service goes on, and wraps new tenant keys under the
		// new master key.
		r.checkReadable(t, r.v)
		r.create(t, r.v, "initech", 10)
		r.checkAllUnder(t, got.KEKID)

		// A new instance, opening the rotated keyring, reads everything.
		fresh := r.service(t, openKMS(t, r.path))
		r.checkReadable(t, fresh)

		// Nothing is left to rewrap.
		again, err := vault.RewrapStale(t.Context(), openKMS(t, r.path), r.rw, nil)
		if err != nil || again != (vault.Rotation{KEKID: got.KEKID}) {
			t.Errorf("rewrap after rotation: got %+v, %v, want nothing done", again, err)
		}
		if ids := keyringIDs(t, r.path); len(ids) != 2 {
			t.Errorf("keyring after a rewrap: got %d keys, want 2 (a rewrap adds none)", len(ids))
		}
	})
}

// TestRewrapStaleResumes interrupts rotations, once between rotating the
// keyring and rewrapping, once part way through the rewrap, and finishes
// each with RewrapStale.
func TestRewrapStaleResumes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		oldID := r.kms.CurrentID()

		// Crash after rotating the keyring file, before any rewrap: the
		// rotating process (like the CLI) has its own ring.
		newID, err := openKMS(t, r.path).Rotate(r.path)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := r.rw.CountStaleWrappedKeys(t.Context(), newID); err != nil || n != 4 {
			t.Fatalf("stale after the crash: got %v, %v, want 4", n, err)
		}
		// Meanwhile the serving instance follows the file and serves.
		r.checkReadable(t, r.v)
		r.create(t, r.v, "initech", 10)
		if w, err := r.keys.TenantKey(t.Context(), "initech"); err != nil || w.KEKID != newID {
			t.Fatalf("tenant key made after the rotation: got %+v, %v, want it under %s", w, err, newID)
		}

		got, err := vault.RewrapStale(t.Context(), openKMS(t, r.path), r.rw, nil)
		if err != nil || got != (vault.Rotation{KEKID: newID, Rewrapped: 4}) {
			t.Fatalf("resume: got %+v, %v, want 4 keys rewrapped under %s", got, err, newID)
		}
		r.checkAllUnder(t, newID)
		if ids := keyringIDs(t, r.path); len(ids) != 2 || ids[0] != oldID || ids[1] != newID {
			t.Errorf("keyring: got %v, want [%s %s] (rewrap-only adds no key)", ids, oldID, newID)
		}
		again, err := vault.RewrapStale(t.Context(), openKMS(t, r.path), r.rw, nil)
		if err != nil || again != (vault.Rotation{KEKID: newID}) {
			t.Errorf("second resume: got %+v, %v, want nothing done", again, err)
		}

		// Interrupted part way: the context ends after the first key.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cli := openKMS(t, r.path)
		partial, err := vault.RotateMaster(ctx, cli, r.path, r.rw, func(done, _ int) {
			if done == 1 {
				cancel()
			}
		})
		if err == nil || partial.Rewrapped != 1 || partial.KEKID == newID || partial.KEKID != cli.CurrentID() {
			t.Fatalf("interrupted rotation: got %+v, %v, want an error after 1 key under the new key", partial, err)
		}
		if !strings.Contains(err.Error(), "run the rewrap again") {
			t.Errorf("interrupted rotation: got %q, want it to say how to finish", err)
		}
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
		finished, err := vault.RewrapStale(t.Context(), openKMS(t, r.path), r.rw, nil)
		if err != nil || finished != (vault.Rotation{KEKID: partial.KEKID, Rewrapped: 4}) {
			t.Fatalf("finish: got %+v, %v, want the other 4 keys rewrapped", finished, err)
		}
		r.checkAllUnder(t, partial.KEKID)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
	})
}

// TestRotateBesideRunningService rotates from another process's keyring,
// as "lethe keys rotate-master" does next to a server: the server follows
// the keyring file, so it opens keys rewrapped under the new master key
// and wraps new ones under it.
func TestRotateBesideRunningService(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		// A server started after the subjects were made has no tenant key
		// in its cache yet.
		server := r.service(t, openKMS(t, r.path))
		got, err := vault.RotateMaster(t.Context(), openKMS(t, r.path), r.path, r.rw, nil)
		if err != nil || got.Rewrapped != 4 {
			t.Fatalf("rotate: got %+v, %v", got, err)
		}
		r.checkReadable(t, server)
		r.create(t, server, "initech", 10)
		r.checkAllUnder(t, got.KEKID)
	})
}

// TestRotateMasterConcurrentWrites rotates while subjects are made in new
// tenants: whatever the interleaving, a rewrap leaves every key under the
// new master key and every subject readable.
func TestRotateMasterConcurrentWrites(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		const writers, each = 4, 5
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					n := 100 + w*each + i
					tenant := fmt.Sprintf("tenant-%02d", n)
					s, err := r.v.CreateSubject(t.Context(), actor, lethe.NewSubject{Tenant: tenant, Identifiers: map[string]string{"email": email(n)}})
					if err != nil {
						errs <- err
						continue
					}
					mu.Lock()
					r.subjects[s.ID] = tenant
					mu.Unlock()
				}
			})
		}
		got, err := vault.RotateMaster(t.Context(), r.kms, r.path, r.rw, nil)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("create during rotation: %v", err)
		}
		if err != nil {
			// A tenant key wrapped just before the rotation and stored
			// after the pass went by is left; the rewrap finishes it.
			t.Logf("rotation: %v", err)
		}
		if _, err := vault.RewrapStale(t.Context(), r.kms, r.rw, nil); err != nil {
			t.Fatal(err)
		}
		r.checkAllUnder(t, got.KEKID)
		r.checkReadable(t, r.v)
		r.checkReadable(t, r.service(t, openKMS(t, r.path)))
	})
}

// TestRewrapStaleReportsUnopenable stores keys the keyring cannot open:
// the others are rewrapped, and the error names the ones left.
func TestRewrapStaleReportsUnopenable(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := newRotation(t, e)
		foreign := openKMS(t, filepath.Join(t.TempDir(), "other.key"))
		w, kek, err := foreign.Wrap(t.Context(), vault.NewKey(), vault.AD("tenant-key", "foreign"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.keys.CreateTenantKey(t.Context(), "foreign", &lethe.WrappedKey{Wrapped: w, KEKID: kek}); err != nil {
			t.Fatal(err)
		}
		// Acme's key copied to another tenant: the associated data no
		// longer matches, so it does not open.
		acme, err := r.keys.TenantKey(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.keys.CreateTenantKey(t.Context(), "copied", acme); err != nil {
			t.Fatal(err)
		}

		got, err := vault.RotateMaster(t.Context(), r.kms, r.path, r.rw, nil)
		if err == nil || got.Rewrapped != 4 {
			t.Fatalf("rotate: got %+v, %v, want 4 keys rewrapped and an error", got, err)
		}
		for _, want := range []string{"2 keys could not be opened", "tenant foreign v1 under " + kek, "tenant copied v1"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q, want it to contain %q", err, want)
			}
		}
		if n, _ := r.rw.CountStaleWrappedKeys(t.Context(), got.KEKID); n != 2 {
			t.Errorf("stale: got %d, want the 2 unopenable keys", n)
		}
		r.checkReadable(t, r.v)
	})
}

func TestRotateMasterRefusesEnvKey(t *testing.T) {
	store, keys, _ := engines()[0].open(t)
	kms, _, err := vault.OpenLocalKMS("", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vault.New(t.Context(), vault.Config{Store: store, Keys: keys, KMS: kms, Audit: &recorder{}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "master.key")
	got, err := vault.RotateMaster(t.Context(), kms, path, keys.(lethe.KeyRewrapper), nil)
	if err == nil || !strings.Contains(err.Error(), "LETHE_MASTER_KEY") || !strings.Contains(err.Error(), "cannot be rotated") {
		t.Fatalf("got %+v, %v, want an error saying LETHE_MASTER_KEY cannot be rotated", got, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("keyring file: got %v, want none made", err)
	}
	if n, err := keys.(lethe.KeyRewrapper).CountStaleWrappedKeys(t.Context(), kms.CurrentID()); err != nil || n != 0 {
		t.Errorf("stale keys: got %v, %v, want 0: nothing may change", n, err)
	}
}

// TestRotateMasterRefusesForeignKeyring rotates with a keyring that is not
// the deployment's: nothing may change, the keyring file included.
func TestRotateMasterRefusesForeignKeyring(t *testing.T) {
	r := newRotation(t, engines()[0])
	path := filepath.Join(t.TempDir(), "other.key")
	other := openKMS(t, path)
	before, _ := os.ReadFile(path)
	got, err := vault.RotateMaster(t.Context(), other, path, r.rw, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot open the key store's secret") {
		t.Fatalf("got %+v, %v, want an error saying the keyring cannot open the secrets", got, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a refused rotation changed the keyring file")
	}
	r.checkAllUnder(t, r.kms.CurrentID())
}

func TestRotateMasterRefusesOtherPath(t *testing.T) {
	r := newRotation(t, engines()[0])
	other := filepath.Join(t.TempDir(), "master.key")
	openKMS(t, other)
	if _, err := vault.RotateMaster(t.Context(), r.kms, other, r.rw, nil); err == nil || !strings.Contains(err.Error(), "opened from") {
		t.Fatalf("got %v, want an error saying the keyring was opened from another file", err)
	}
	if n := len(keyringIDs(t, other)) + len(keyringIDs(t, r.path)); n != 2 {
		t.Errorf("keyrings: got %d keys in all, want 2: nothing may change", n)
	}
}
