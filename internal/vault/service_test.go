package vault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/postgres"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/testsvc"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// recorder is an Auditor that keeps events in memory and can be made to
// fail, to check that the vault fails closed.
type recorder struct {
	mu     sync.Mutex
	events []lethe.AuditEvent
	fail   bool
}

func (r *recorder) Record(_ context.Context, events ...lethe.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("audit sink down")
	}
	r.events = append(r.events, events...)
	return nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Action)
	}
	return out
}

// engine opens a fresh pair of stores.
type engine struct {
	name string
	open func(t *testing.T) (lethe.VaultStore, lethe.KeyStore, func() [][]byte)
}

// engines returns SQLite always and PostgreSQL when it is reachable. The
// dump function returns every stored byte, for the plaintext scan.
func engines() []engine {
	return []engine{
		{"sqlite", func(t *testing.T) (lethe.VaultStore, lethe.KeyStore, func() [][]byte) {
			dir := t.TempDir()
			data, err := sqlite.OpenData(context.Background(), filepath.Join(dir, "data.db"))
			if err != nil {
				t.Fatal(err)
			}
			keys, err := sqlite.OpenKeys(context.Background(), filepath.Join(dir, "keys.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { data.Close(); keys.Close() })
			dump := func() [][]byte {
				var out [][]byte
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					b, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, b)
				}
				return out
			}
			return sqlite.NewVaultStore(data), sqlite.NewKeyStore(keys), dump
		}},
		{"postgres", func(t *testing.T) (lethe.VaultStore, lethe.KeyStore, func() [][]byte) {
			dataDSN, keysDSN := testsvc.Postgres(t), testsvc.Postgres(t)
			data, err := postgres.OpenData(context.Background(), dataDSN)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := postgres.OpenKeys(context.Background(), keysDSN)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { data.Close(); keys.Close() })
			return postgres.NewVaultStore(data), postgres.NewKeyStore(keys), func() [][]byte {
				return append(dumpPostgres(t, dataDSN), dumpPostgres(t, keysDSN)...)
			}
		}},
	}
}

// dumpPostgres returns the text form of every row of every table.
func dumpPostgres(t *testing.T, dsn string) [][]byte {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, table := range tables {
		rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %s t`, pgx.Identifier{table}.Sanitize()))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			out = append(out, []byte(s))
		}
	}
	return out
}

type fixture struct {
	v     *vault.Service
	audit *recorder
	store lethe.VaultStore
	keys  lethe.KeyStore
	dump  func() [][]byte
	kms   vault.KMS
}

func newFixture(t *testing.T, e engine) *fixture {
	t.Helper()
	store, keys, dump := e.open(t)
	kms, _, err := vault.OpenLocalKMS(filepath.Join(t.TempDir(), "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{audit: &recorder{}, store: store, keys: keys, dump: dump, kms: kms}
	f.v, err = vault.New(context.Background(), vault.Config{Store: store, Keys: keys, KMS: kms, Audit: f.audit})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newServiceWith opens another Service on the fixture's stores and keys.
func newServiceWith(f *fixture, p lethe.PurposeChecker) (*vault.Service, error) {
	return vault.New(context.Background(), vault.Config{Store: f.store, Keys: f.keys, KMS: f.kms, Audit: f.audit, Purposes: p})
}

// findID looks a subject up and returns its ID alone.
func findID(v *vault.Service, ctx context.Context, a lethe.Actor, tenant, kind, value string) (string, error) {
	s, err := v.LookupSubject(ctx, a, tenant, kind, value, lethe.ReadOptions{Fields: []string{}})
	if err != nil {
		return "", err
	}
	return s.ID, nil
}

var actor = lethe.Actor{KeyID: "key_test", Role: lethe.RoleService, RequestID: "req_test"}

func forEachEngine(t *testing.T, fn func(t *testing.T, e engine)) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) { fn(t, e) })
	}
}

func code(err error) string { return lethe.ErrorCode(err) }

func TestSubjectLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		ctx := context.Background()
		created, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{
			Identifiers: map[string]string{"email": " Jane.Doe@Example.com ", "phone": "+44 20 7946 0958", "shop_customer_id": "C-1001"},
			Profile:     json.RawMessage(`{"name":"Jane Doe","address":{"city":"Leeds","zip":"LS1"}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(created.ID, "sub_") || created.Tenant != lethe.DefaultTenant || created.Version != 1 {
			t.Fatalf("created: got id %s tenant %s version %d", created.ID, created.Tenant, created.Version)
		}
		if created.Identifiers["email"] != "jane.doe@example.com" || created.Identifiers["phone"] != "+442079460958" {
			t.Errorf("identifiers not normalised")
		}

		id, err := findID(f.v, ctx, actor, "", "email", "JANE.DOE@example.COM")
		if err != nil || id != created.ID {
			t.Fatalf("find by email: got %s, %v; want %s", id, err, created.ID)
		}
		if _, err := findID(f.v, ctx, actor, "", "email", "nobody@example.com"); code(err) != lethe.ENOTFOUND {
			t.Errorf("find unknown: got %v, want not_found", err)
		}

		// A second subject may not take the same identifier.
		_, err = f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "jane.doe@example.com"}})
		if code(err) != lethe.ECONFLICT || strings.Contains(lethe.ErrorMessage(err), "jane") {
			t.Errorf("duplicate email: got %v, want a conflict naming no value", err)
		}

		masked, err := f.v.ReadSubject(ctx, actor, "", id, lethe.ReadOptions{Fields: []string{"email", "name"}, Masked: true})
		if err != nil {
			t.Fatal(err)
		}
		if masked.Identifiers["email"] != "j***@example.com" || string(masked.Profile) != `{"name":"J***"}` || len(masked.Identifiers) != 1 {
			t.Errorf("masked field read: got %v %s", masked.Identifiers, masked.Profile)
		}

		// Rectify: a merge patch, an email change, a removal.
		upd, err := f.v.UpdateSubject(ctx, actor, "", id, lethe.ProfileChange{
			Patch:             json.RawMessage(`{"address":{"zip":"LS2","city":null},"vip":true}`),
			SetIdentifiers:    map[string]string{"email": "jane@new.example"},
			RemoveIdentifiers: []string{"shop_customer_id"},
			Reason:            "customer moved",
		})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Version != 2 || string(upd.Profile) != `{"address":{"zip":"LS2"},"name":"Jane Doe","vip":true}` {
			t.Errorf("after patch: got version %d profile %s", upd.Version, upd.Profile)
		}
		if _, ok := upd.Identifiers["shop_customer_id"]; ok {
			t.Error("removed identifier still present")
		}
		if got, err := findID(f.v, ctx, actor, "", "email", "jane@new.example"); err != nil || got != id {
			t.Errorf("find by new email: got %s, %v", got, err)
		}
		if _, err := findID(f.v, ctx, actor, "", "email", "jane.doe@example.com"); code(err) != lethe.ENOTFOUND {
			t.Errorf("old email still finds the subject: %v", err)
		}
		if _, err := findID(f.v, ctx, actor, "", "shop_customer_id", "C-1001"); code(err) != lethe.ENOTFOUND {
			t.Errorf("removed identifier still finds the subject: %v", err)
		}
		// The old email is free for somebody else now.
		other, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "jane.doe@example.com"}})
		if err != nil {
			t.Fatalf("old email not freed: %v", err)
		}
		// …and the new one is taken.
		if _, err := f.v.UpdateSubject(ctx, actor, "", other.ID, lethe.ProfileChange{SetIdentifiers: map[string]string{"email": "jane@new.example"}}); code(err) != lethe.ECONFLICT {
			t.Errorf("taking another subject's email: got %v, want conflict", err)
		}

		h, err := f.v.History(ctx, actor, "", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 || h[0].Version != 1 || h[1].Reason != "customer moved" || h[1].Principal != actor.KeyID {
			t.Fatalf("history: got %+v", h)
		}
		if !bytes.Contains(h[0].Profile, []byte("jane.doe@example.com")) || !bytes.Contains(h[0].Profile, []byte("Leeds")) {
			t.Error("history lost the prior version")
		}

		// Erase: 410 everywhere after, never 404, never data.
		fg, err := f.v.EraseSubject(ctx, actor, "", id)
		if err != nil || fg.SubjectID != id || fg.ErasedAt.IsZero() {
			t.Fatalf("erase: got %+v, %v", fg, err)
		}
		if _, err := f.v.ReadSubject(ctx, actor, "", id, lethe.ReadOptions{}); code(err) != lethe.EGONE {
			t.Errorf("read after erase: got %v, want gone", err)
		}
		if _, err := f.v.History(ctx, actor, "", id); code(err) != lethe.EGONE {
			t.Errorf("history after erase: got %v, want gone", err)
		}
		if _, err := f.v.UpdateSubject(ctx, actor, "", id, lethe.ProfileChange{Reason: "x"}); code(err) != lethe.EGONE {
			t.Errorf("update after erase: got %v, want gone", err)
		}
		if _, err := findID(f.v, ctx, actor, "", "email", "jane@new.example"); code(err) != lethe.ENOTFOUND {
			t.Errorf("find after erase: got %v, want not_found", err)
		}
		again, err := f.v.EraseSubject(ctx, actor, "", id)
		if err != nil || !again.ErasedAt.Equal(fg.ErasedAt) {
			t.Errorf("second erase: got %+v, %v; want the first erasure time", again, err)
		}
		if _, err := f.v.EraseSubject(ctx, actor, "", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"); code(err) != lethe.ENOTFOUND {
			t.Errorf("erase unknown: got %v, want not_found", err)
		}
		want := []string{"subject.create", "subject.lookup", "subject.read_masked", "subject.update", "subject.lookup", "subject.create", "subject.history", "subject.erase", "subject.erase"}
		if got := strings.Join(f.audit.actions(), ","); got != strings.Join(want, ",") {
			t.Errorf("audit trail: got %s, want %s", got, strings.Join(want, ","))
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t, engines()[0])
	ctx := context.Background()
	tests := []struct {
		name string
		in   lethe.NewSubject
	}{
		{"no identifiers", lethe.NewSubject{}},
		{"bad email", lethe.NewSubject{Identifiers: map[string]string{"email": "not-an-email"}}},
		{"bad phone", lethe.NewSubject{Identifiers: map[string]string{"phone": "12345"}}},
		{"bad kind", lethe.NewSubject{Identifiers: map[string]string{"E-Mail": "a@b.c"}}},
		{"profile not an object", lethe.NewSubject{Identifiers: map[string]string{"email": "a@b.example"}, Profile: json.RawMessage(`[1]`)}},
		{"bad tenant", lethe.NewSubject{Tenant: "Big Corp", Identifiers: map[string]string{"email": "a@b.example"}}},
		{"personal data as a field name", lethe.NewSubject{Identifiers: map[string]string{"email": "a@b.example"}, Profile: json.RawMessage(`{"jane@example.com":1}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.v.CreateSubject(ctx, actor, tt.in); code(err) != lethe.EINVALID {
				t.Fatalf("got %v, want invalid", err)
			}
		})
	}
	if n := len(f.audit.actions()); n != 0 {
		t.Errorf("bad input was audited as done: %d events", n)
	}
}

func TestTenantIsolation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		ctx := context.Background()
		a, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Tenant: "acme", Identifiers: map[string]string{"email": "same@example.com"}, Profile: json.RawMessage(`{"n":"a"}`)})
		if err != nil {
			t.Fatal(err)
		}
		// The same email in another tenant is another subject.
		b, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Tenant: "globex", Identifiers: map[string]string{"email": "same@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := findID(f.v, ctx, actor, "globex", "email", "same@example.com"); id != b.ID {
			t.Errorf("globex lookup: got %s, want %s", id, b.ID)
		}
		if _, err := f.v.ReadSubject(ctx, actor, "globex", a.ID, lethe.ReadOptions{}); code(err) != lethe.ENOTFOUND {
			t.Errorf("globex reading acme's subject: got %v, want not_found", err)
		}
		if _, err := f.v.UpdateSubject(ctx, actor, "globex", a.ID, lethe.ProfileChange{Patch: json.RawMessage(`{"n":"x"}`)}); code(err) != lethe.ENOTFOUND {
			t.Errorf("globex updating acme's subject: got %v, want not_found", err)
		}
		if _, err := f.v.EraseSubject(ctx, actor, "globex", a.ID); code(err) != lethe.ENOTFOUND {
			t.Errorf("globex erasing acme's subject: got %v, want not_found", err)
		}
		if v, err := f.v.ReadSubject(ctx, actor, "acme", a.ID, lethe.ReadOptions{}); err != nil || string(v.Profile) != `{"n":"a"}` {
			t.Errorf("acme's subject after globex's attempts: got %v, %v", v, err)
		}
	})
}

// seed creates n subjects with unique, known values and returns them.
func seed(t *testing.T, v *vault.Service, n int) []string {
	t.Helper()
	var values []string
	for i := 0; i < n; i++ {
		email := fmt.Sprintf("Seeded.Person%04d@Example.org", i)
		name := fmt.Sprintf("Zyxwo Quenby%04d", i)
		street := fmt.Sprintf("%04d Marrowgate Lane", i)
		cust := fmt.Sprintf("CUST-UNIQ-%04d", i)
		_, err := v.CreateSubject(context.Background(), actor, lethe.NewSubject{
			Identifiers: map[string]string{"email": email, "shop_customer_id": cust},
			Profile:     json.RawMessage(fmt.Sprintf(`{"name":%q,"street":%q}`, name, street)),
		})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, email, name, street, cust)
	}
	return values
}

// TestNoPlaintextAtRest seeds 1,000 subjects, with the real audit log
// recording, and scans every stored byte (SQLite files with their WAL;
// every PostgreSQL row; every file of the audit log) for any seeded value
// or its lower-case form.
func TestNoPlaintextAtRest(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		auditDir := filepath.Join(t.TempDir(), "audit")
		v, err := vault.New(context.Background(), vault.Config{Store: f.store, Keys: f.keys, KMS: f.kms,
			Audit: audittest.Open(t, auditDir, f.keys.(lethe.CheckpointStore))})
		if err != nil {
			t.Fatal(err)
		}
		values := seed(t, v, 1000)
		for i := 0; i < len(values); i += 40 {
			if _, err := v.LookupSubject(context.Background(), actor, "", "email", values[i], lethe.ReadOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var all []byte
		for _, b := range f.dump() {
			all = append(all, b...)
		}
		all = append(all, audittest.Files(t, auditDir)...)
		hits := 0
		for _, v := range values {
			if bytes.Contains(all, []byte(v)) || bytes.Contains(all, []byte(strings.ToLower(v))) {
				hits++
			}
		}
		if hits != 0 {
			t.Fatalf("%d of %d seeded values found in %d stored bytes, want 0", hits, len(values), len(all))
		}
		t.Logf("%d seeded values, %d stored bytes scanned, 0 hits", len(values), len(all))
	})
}

// TestErasureReachesBackups copies the data store, erases a subject,
// restores the copy with the current key store and checks the subject stays
// gone.
func TestErasureReachesBackups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kms, _, err := vault.OpenLocalKMS(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer keysDB.Close()
	keys := sqlite.NewKeyStore(keysDB)
	open := func(path string) (*sqlite.DB, *vault.Service) {
		db, err := sqlite.OpenData(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vault.New(ctx, vault.Config{Store: sqlite.NewVaultStore(db), Keys: keys, KMS: kms, Audit: &recorder{}})
		if err != nil {
			t.Fatal(err)
		}
		return db, v
	}
	live := filepath.Join(dir, "data.db")
	db, v := open(live)
	s, err := v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "gone@example.com"}, Profile: json.RawMessage(`{"secret":"Hyacinth"}`)})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "stays@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	// The backup: a consistent copy of the data store alone.
	backup := filepath.Join(dir, "backup.db")
	if err := db.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if _, err := v.EraseSubject(ctx, actor, "", s.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Restore: the old data store, the current key store.
	restored := filepath.Join(dir, "restored.db")
	copyFile(t, backup, restored)
	rdb, rv := open(restored)
	defer rdb.Close()
	if _, err := rv.ReadSubject(ctx, actor, "", s.ID, lethe.ReadOptions{}); code(err) != lethe.EGONE {
		t.Fatalf("erased subject after restore: got %v, want gone", err)
	}
	// Its sealed rows are still in the restored file, and nothing opens them.
	sealed, err := sqlite.NewVaultStore(rdb).LatestVersion(ctx, lethe.DefaultTenant, s.ID)
	if err != nil {
		t.Fatalf("the restored backup should still hold the sealed row: %v", err)
	}
	if _, err := keys.SubjectKey(ctx, lethe.DefaultTenant, s.ID); code(err) != lethe.EGONE {
		t.Fatalf("subject key after erasure: got %v, want gone", err)
	}
	if len(sealed.Sealed) == 0 || bytes.Contains(sealed.Sealed, []byte("Hyacinth")) {
		t.Fatal("sealed row missing or in the clear")
	}
	if _, err := rv.ReadSubject(ctx, actor, "", keep.ID, lethe.ReadOptions{}); err != nil {
		t.Errorf("a subject not erased is readable after the restore: %v", err)
	}
	// The restored rows still hold the erased subject's email: somebody
	// registering with it again is refused until the forget list is replayed.
	again := lethe.NewSubject{Identifiers: map[string]string{"email": "gone@example.com"}}
	if _, err := rv.CreateSubject(ctx, actor, again); code(err) != lethe.ECONFLICT {
		t.Fatalf("re-registering before the replay: got %v, want conflict", err)
	}
	n, err := rv.ReplayForgetList(ctx, nil)
	if err != nil || n != 1 {
		t.Fatalf("replay: got %d, %v; want 1 entry", n, err)
	}
	if _, err := sqlite.NewVaultStore(rdb).LatestVersion(ctx, lethe.DefaultTenant, s.ID); code(err) != lethe.ENOTFOUND {
		t.Errorf("sealed row after the replay: got %v, want not_found", err)
	}
	if _, err := rv.CreateSubject(ctx, actor, again); err != nil {
		t.Errorf("re-registering after the replay: %v", err)
	}
	if _, err := rv.ReadSubject(ctx, actor, "", s.ID, lethe.ReadOptions{}); code(err) != lethe.EGONE {
		t.Errorf("erased subject after the replay: got %v, want gone", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAuditFailsClosed(t *testing.T) {
	f := newFixture(t, engines()[0])
	ctx := context.Background()
	s, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "closed@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	f.audit.mu.Lock()
	f.audit.fail = true
	f.audit.mu.Unlock()
	if v, err := f.v.ReadSubject(ctx, actor, "", s.ID, lethe.ReadOptions{}); code(err) != lethe.EUNAVAILABLE || v != nil {
		t.Errorf("read with the audit log down: got %v, %v; want unavailable and no data", v, err)
	}
	if id, err := findID(f.v, ctx, actor, "", "email", "closed@example.com"); code(err) != lethe.EUNAVAILABLE || id != "" {
		t.Errorf("find with the audit log down: got %q, %v; want unavailable", id, err)
	}
}

// TestConcurrency runs 64 goroutines creating, reading, rectifying and
// erasing at once, then 64 goroutines patching one subject, and checks that
// nothing failed and no update was lost.
func TestConcurrency(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 64*8)
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				s, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": fmt.Sprintf("c%d@example.com", g)}})
				if err != nil {
					errs <- err
					return
				}
				if _, err := f.v.ReadSubject(ctx, actor, "", s.ID, lethe.ReadOptions{}); err != nil {
					errs <- err
				}
				if _, err := f.v.UpdateSubject(ctx, actor, "", s.ID, lethe.ProfileChange{Patch: json.RawMessage(`{"n":1}`)}); err != nil {
					errs <- err
				}
				if g%2 == 0 {
					if _, err := f.v.EraseSubject(ctx, actor, "", s.ID); err != nil {
						errs <- err
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent operation failed: %v", err)
		}

		shared, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "shared@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		errs2 := make(chan error, 64)
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				_, err := f.v.UpdateSubject(ctx, actor, "", shared.ID, lethe.ProfileChange{Patch: json.RawMessage(fmt.Sprintf(`{"f%02d":%d}`, g, g))})
				if err != nil {
					errs2 <- err
				}
			}(g)
		}
		wg.Wait()
		close(errs2)
		for err := range errs2 {
			t.Errorf("concurrent update failed: %v", err)
		}
		v, err := f.v.ReadSubject(ctx, actor, "", shared.ID, lethe.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var prof map[string]int
		json.Unmarshal(v.Profile, &prof)
		if len(prof) != 64 || v.Version != 65 {
			t.Errorf("lost updates: got %d fields at version %d, want 64 at 65", len(prof), v.Version)
		}
	})
}

func TestAuditEventsHoldNoValues(t *testing.T) {
	f := newFixture(t, engines()[0])
	values := seed(t, f.v, 20)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		id, err := findID(f.v, ctx, actor, "", "email", values[i*4])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.v.ReadSubject(ctx, actor, "", id, lethe.ReadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(f.audit.events)
	for _, v := range values {
		if bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(v))) {
			t.Fatal("an audit event holds a seeded value")
		}
	}
}

func TestEraseTenant(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		ctx := context.Background()
		a, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Tenant: "acme", Identifiers: map[string]string{"email": "x@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Tenant: "globex", Identifiers: map[string]string{"email": "x@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		fg, err := f.v.EraseTenant(ctx, actor, "acme")
		if err != nil || fg.Tenant != "acme" || fg.SubjectID != "" {
			t.Fatalf("erase tenant: got %+v, %v", fg, err)
		}
		if _, err := f.keys.SubjectKey(ctx, "acme", a.ID); code(err) != lethe.EGONE {
			t.Errorf("subject key of an erased tenant: got %v, want gone", err)
		}
		// A fresh service (no cache) agrees.
		v2, err := newServiceWith(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []*vault.Service{f.v, v2} {
			if _, err := v.ReadSubject(ctx, actor, "acme", a.ID, lethe.ReadOptions{}); code(err) != lethe.EGONE {
				t.Errorf("read in an erased tenant: got %v, want gone", err)
			}
			if _, err := v.CreateSubject(ctx, actor, lethe.NewSubject{Tenant: "acme", Identifiers: map[string]string{"email": "y@example.com"}}); code(err) != lethe.EGONE {
				t.Errorf("create in an erased tenant: got %v, want gone", err)
			}
			if _, err := v.ReadSubject(ctx, actor, "globex", b.ID, lethe.ReadOptions{}); err != nil {
				t.Errorf("another tenant: %v", err)
			}
		}
		if _, err := f.v.EraseTenant(ctx, actor, "acme"); err != nil {
			t.Errorf("erase again: %v", err)
		}
		if _, err := f.v.EraseTenant(ctx, actor, "never"); code(err) != lethe.ENOTFOUND {
			t.Errorf("erase an unknown tenant: got %v, want not_found", err)
		}
	})
}
