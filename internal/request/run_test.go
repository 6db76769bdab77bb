package request_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/connector/files"
	"github.com/lethe-privacy/lethe/internal/connector/manual"
	connsqlite "github.com/lethe-privacy/lethe/internal/connector/sqlite"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/jobs"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
)

// world is a deployment with the sample shop's database (SQLite) and
// uploads as its systems, a real vault, and the job queue running.
type world struct {
	*deployment
	down     atomic.Bool // the uploads system is unreachable
	shopDB   *sql.DB
	uploads  string
	cs       []shop.Customer
	subjects map[int64]string // customer ID → subject ID
}

func newWorld(t *testing.T, extra ...string) *world { return newWorldN(t, 8, 0, extra...) }

// newWorldN is a world with n customers and workers job workers (the
// queue's default if 0).
func newWorldN(t testing.TB, n, workers int, extra ...string) *world {
	t.Helper()
	return newWorldWith(t, n, workers, nil, extra...)
}

// newWorldWith is newWorldN with tweak applied to the runner's
// configuration.
func newWorldWith(t testing.TB, n, workers int, tweak func(*request.RunnerConfig), extra ...string) *world {
	t.Helper()
	ctx := context.Background()
	m, err := datamap.Load(filepath.Join("..", "..", "examples", "shop", "lethe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{deployment: newDeployment(t, m.Purposes), subjects: map[int64]string{}}
	w.uploads = filepath.Join(w.dir, "uploads")

	// The shop, its customers in the vault with their Lethe IDs.
	shopPath := filepath.Join(w.dir, "shop.db")
	if w.shopDB, err = sql.Open("sqlite", "file:"+shopPath+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.shopDB.Close() })
	if err := shop.Create(ctx, w.shopDB, shop.SQLite); err != nil {
		t.Fatal(err)
	}
	if w.cs, err = shop.Seed(ctx, w.shopDB, shop.SQLite, n, 1); err != nil {
		t.Fatal(err)
	}
	if err := shop.SeedFiles(w.uploads, w.cs); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.cs {
		s, err := w.vault.CreateSubject(ctx, lethe.Actor{KeyID: "key_shop", Role: lethe.RoleService}, lethe.NewSubject{Identifiers: shop.Identifiers(c)})
		if err != nil {
			t.Fatal(err)
		}
		w.subjects[c.ID] = s.ID
		if _, err := w.shopDB.Exec("UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID); err != nil {
			t.Fatal(err)
		}
	}

	shopSys, _ := m.System("shop")
	shopCopy := *shopSys
	shopCopy.Kind, shopCopy.Connection = datamap.KindSQLite, datamap.SecretRef{Path: shopPath}
	upSys, _ := m.System("uploads")
	upCopy := *upSys
	upCopy.Connection = datamap.SecretRef{Path: w.uploads}
	crm, _ := m.System("crm_spreadsheet")
	open := func(ctx context.Context, name string) (connector.Connector, error) {
		switch name {
		case "shop":
			return connsqlite.Open(ctx, &shopCopy)
		case "crm":
			return manual.Open(ctx, crm)
		case "uploads":
			if w.down.Load() {
				return nil, errors.New("system uploads: the file server is unreachable")
			}
			return files.Open(ctx, &upCopy)
		}
		return nil, fmt.Errorf("no system %s", name)
	}
	rc := w.runnerConfig(request.RunnerConfig{Systems: append([]string{"shop", "uploads"}, extra...), Open: open,
		Summary: request.Summary{Organisation: m.Organisation.Name, Contact: m.DPO.Email, Purposes: m.Purposes,
			Recipients: []string{"Mailpost Inc. (US; standard contractual clauses)"}, Systems: []string{"shop: the shop's database", "uploads: avatars"}}})
	if tweak != nil {
		tweak(&rc)
	}
	cfg := jobs.Config{MaxAttempts: 3}
	if workers > 0 {
		cfg.Queues = map[string]int{jobs.DefaultQueue: workers}
	}
	w.start(t, rc, cfg, "")
	return w
}

// wait returns the request once it is closed or partially completed.
func (w *world) wait(t testing.TB, id string) *lethe.Request {
	t.Helper()
	return w.waitFor(t, id, func(s lethe.RequestState) bool { return !s.Open() || s == lethe.RequestPartial })
}

// waitFor returns the request once its state satisfies ok.
func (w *world) waitFor(t testing.TB, id string, ok func(lethe.RequestState) bool) *lethe.Request {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, err := w.store.Request(context.Background(), lethe.DefaultTenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r.State) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	tasks, _ := w.store.Tasks(context.Background(), id)
	if w.qdb != nil {
		rows, err := w.qdb.Query("SELECT id, kind, state, attempt, max_attempts, scheduled_at FROM river_job")
		if err == nil {
			for rows.Next() {
				var id, attempt, maxA int
				var kind, state, sched string
				rows.Scan(&id, &kind, &state, &attempt, &maxA, &sched)
				t.Logf("job %d %s %s attempt %d/%d scheduled %s", id, kind, state, attempt, maxA, sched)
			}
			rows.Close()
		}
	}
	r, _ := w.store.Request(context.Background(), lethe.DefaultTenant, id)
	t.Fatalf("request %s did not finish (%s): %d tasks", id, r.State, len(tasks))
	return nil
}

var dpo = lethe.Actor{KeyID: "key_dpo", Role: lethe.RoleDPO}

// TestErasureRuns: an approved erasure runs in every system through the
// job queue, the subject's key is destroyed last, and the receipt is
// signed; nothing of the customer is left but pseudonyms, and nobody else
// is touched.
func TestErasureRuns(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[2]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
		t.Fatal(err)
	}
	done := w.wait(t, r.ID)
	if done.State != lethe.RequestCompleted || len(done.Receipt) == 0 {
		t.Fatalf("got %s, receipt %d bytes", done.State, len(done.Receipt))
	}
	var signed request.SignedReceipt
	if err := json.Unmarshal(done.Receipt, &signed); err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(signed.Signature)
	if !ed25519.Verify(w.pub, signed.Receipt, sig) {
		t.Error("the receipt's signature does not verify")
	}
	var rc request.Receipt
	json.Unmarshal(signed.Receipt, &rc)
	if len(rc.Systems) != 2 || rc.KeyDestroyedAt == nil || rc.SubjectID != w.subjects[c.ID] {
		t.Errorf("receipt: %s", signed.Receipt)
	}
	for _, s := range rc.Systems {
		if s.State != lethe.TaskDone || s.Report == nil || s.Report.Total() == 0 {
			t.Errorf("receipt system %s: %+v", s.System, s)
		}
	}
	if strings.Contains(string(signed.Receipt), c.Email) || strings.Contains(string(signed.Receipt), c.FullName) {
		t.Error("the receipt holds a personal value")
	}
	if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); lethe.ErrorCode(err) != lethe.EGONE {
		t.Errorf("the subject after erasure: got %v, want %s", err, lethe.EGONE)
	}
	// Nothing of the customer in any table or file; the others intact.
	dumpText := dumpShop(t, w.shopDB) + dumpFiles(t, w.uploads)
	for i, v := range c.PersonalValues() {
		if strings.Contains(dumpText, v) {
			t.Errorf("value #%d of the customer survived the erasure", i)
		}
	}
	for _, o := range w.cs {
		if o.ID == c.ID {
			continue
		}
		if !strings.Contains(dumpText, o.Email) {
			t.Errorf("customer %d lost their data", o.ID)
		}
	}
}

// TestAccessRuns: an access request gathers the person's data from every
// system into the sealed archive, and nobody else's.
func TestAccessRuns(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[4]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	done := w.wait(t, r.ID)
	if done.State != lethe.RequestCompleted {
		t.Fatalf("got %s", done.State)
	}
	sealed, err := w.store.Archive(ctx, r.ID, "archive.zip")
	if err != nil || bytes.Contains(sealed, []byte(c.Email)) {
		t.Errorf("the archive is not stored sealed: %v", err)
	}
	if _, err := w.store.Archive(ctx, r.ID, "part:shop"); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("once the archive is built its parts are kept: %v", err)
	}

	// The person gets a one-time link to a zip with their data and the
	// summary of what is done with it.
	names, _ := w.outbox.List()
	var link string
	for _, n := range names {
		m, _ := mail.ReadMessage(n)
		if l := regexp.MustCompile(`/v1/self/downloads/(\S+)`).FindStringSubmatch(m.Text); l != nil && m.To == c.Email {
			link = l[1]
		}
	}
	if link == "" {
		t.Fatal("no link was mailed to the person")
	}
	if _, err := w.runner.Download(ctx, link+"x"); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("a wrong link: got %v", err)
	}
	zipped, err := w.runner.Download(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
	}
	readme := files["README.txt"]
	for _, want := range []string{"Example Shop Ltd", "newsletter (consent)", "legal obligation", "Mailpost Inc.", "user.contact.email", "supervisory authority", "dpo@shop.example"} {
		if !strings.Contains(readme, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	for _, name := range []string{"data/shop.json", "data/shop/customers.csv", "data/shop/orders.csv", "data/lethe-vault.json", "data/consent-history.json", "data/audit-events.json"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the archive lacks %s", name)
		}
	}
	if !strings.Contains(files["data/shop/customers.csv"], c.Email) || !strings.Contains(files["data/lethe-vault.json"], c.Email) {
		t.Error("the archive's tables lack the person's address")
	}
	var all strings.Builder
	for _, f := range files {
		all.WriteString(f)
	}
	for i, v := range c.PersonalValues() {
		if !strings.Contains(all.String(), v) {
			t.Errorf("the archive lacks value #%d", i)
		}
	}
	for _, o := range w.cs {
		if o.ID != c.ID && strings.Contains(all.String(), o.Email) {
			t.Errorf("the archive holds customer %d's address", o.ID)
		}
	}
	if _, err := w.runner.Download(ctx, link); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("the link used twice: got %v", err)
	}
	if _, err := w.store.Archive(ctx, r.ID, "part:shop"); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("after the download the parts are kept: %v", err)
	}
}

// TestUnreachableSystem: while one system cannot be reached the request is
// partially completed, the others done; once it is back, the request
// completes, and nothing ran twice with effect.
func TestUnreachableSystem(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[3]
	w.down.Store(true)
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
		t.Fatal(err)
	}
	partial := w.wait(t, r.ID)
	if partial.State != lethe.RequestPartial {
		t.Fatalf("with uploads down: got %s, want partially_completed", partial.State)
	}
	tasks, _ := w.store.Tasks(ctx, r.ID)
	for _, task := range tasks {
		switch task.System {
		case "shop":
			if task.State != lethe.TaskDone {
				t.Errorf("shop: %s", task.State)
			}
		case "uploads":
			if task.State == lethe.TaskDone || !strings.Contains(task.Error, "unreachable") {
				t.Errorf("uploads: %s %q", task.State, task.Error)
			}
		}
	}
	// The subject's key is not destroyed while a system still holds data.
	if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); err != nil {
		t.Errorf("the subject while partially erased: %v", err)
	}
	w.down.Store(false)
	// Its job may still be retrying; if it gave up, staff retry.
	if cur, _ := w.store.Request(ctx, lethe.DefaultTenant, r.ID); cur.State == lethe.RequestPartial {
		tasks, _ := w.store.Tasks(ctx, r.ID)
		for _, task := range tasks {
			if task.State == lethe.TaskFailed {
				if err := w.runner.Retry(ctx, cur); err != nil && lethe.ErrorCode(err) != lethe.ECONFLICT {
					t.Fatal(err)
				}
			}
		}
	}
	done := w.waitFor(t, r.ID, func(s lethe.RequestState) bool { return s == lethe.RequestCompleted })
	var signed request.SignedReceipt
	json.Unmarshal(done.Receipt, &signed)
	var rc request.Receipt
	json.Unmarshal(signed.Receipt, &rc)
	for _, s := range rc.Systems {
		if s.State != lethe.TaskDone {
			t.Errorf("receipt: %s %s", s.System, s.State)
		}
	}
	if _, err := os.Stat(filepath.Join(w.uploads, "avatars", fmt.Sprint(c.ID))); c.Avatar != "" && !os.IsNotExist(err) {
		t.Errorf("the avatar survived: %v", err)
	}
}

// TestManualSystemAcknowledged: a system only a person can reach waits
// for them, the request partially completed and the subject's key kept;
// their acknowledgement completes it.
func TestManualSystemAcknowledged(t *testing.T) {
	w := newWorld(t, "crm")
	ctx := context.Background()
	c := w.cs[5]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
		t.Fatal(err)
	}
	if p := w.wait(t, r.ID); p.State != lethe.RequestPartial {
		t.Fatalf("got %s, want partially_completed while the person has not done the checklist", p.State)
	}
	if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); err != nil {
		t.Errorf("the subject's key went before every system was done: %v", err)
	}
	if _, err := w.svc.Acknowledge(ctx, dpo, lethe.DefaultTenant, r.ID, "billing", 1, ""); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("acknowledging a system the request has not: got %v, want %s", err, lethe.ENOTFOUND)
	}
	if _, err := w.svc.Acknowledge(ctx, dpo, lethe.DefaultTenant, r.ID, "crm", 2, "two rows deleted"); err != nil {
		t.Fatal(err)
	}
	done := w.waitFor(t, r.ID, func(s lethe.RequestState) bool { return s == lethe.RequestCompleted })
	if !strings.Contains(string(done.Receipt), "acknowledged") {
		t.Errorf("the receipt does not record the acknowledgement")
	}
	if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); lethe.ErrorCode(err) != lethe.EGONE {
		t.Errorf("after the last system: got %v, want %s", err, lethe.EGONE)
	}
}

// TestRestrictionAndObjection: once run, a restriction stops every
// processing check and an objection the purpose objected to.
func TestRestrictionAndObjection(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	a, b := w.cs[0], w.cs[1]
	for _, ask := range []lethe.RequestAsk{
		{Type: lethe.RequestRestriction, SubjectID: w.subjects[a.ID], Contact: a.Email, Verified: true, Reason: "accuracy_contested"},
		{Type: lethe.RequestObjection, SubjectID: w.subjects[b.ID], Contact: b.Email, Verified: true, Purpose: "analytics"},
	} {
		r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, ask)
		if err != nil {
			t.Fatal(err)
		}
		if done := w.wait(t, r.ID); done.State != lethe.RequestCompleted {
			t.Fatalf("%s: got %s", ask.Type, done.State)
		}
	}
	check := func(subject, purpose string) string {
		d, err := w.consent.Check(ctx, lethe.DefaultTenant, subject, purpose, 0)
		if err != nil {
			t.Fatal(err)
		}
		return d.Reason
	}
	if got := check(w.subjects[a.ID], "orders"); got != lethe.DecisionRestricted {
		t.Errorf("restricted subject, orders: got %s", got)
	}
	if got := check(w.subjects[b.ID], "analytics"); got != lethe.DecisionObjected {
		t.Errorf("objecting subject, analytics: got %s", got)
	}
	if got := check(w.subjects[b.ID], "orders"); got != lethe.DecisionLegalBasis {
		t.Errorf("objecting subject, orders: got %s", got)
	}
	hist, _ := w.consent.History(ctx, dpo, lethe.DefaultTenant, w.subjects[a.ID])
	if len(hist) != 1 || hist[0].Reason != "accuracy_contested" || hist[0].Channel != "request" {
		t.Errorf("the ledger: got %+v", hist)
	}
	// The shop's map marks a restricted customer, and suppresses their
	// newsletter on a restriction or an objection to it; an objection to
	// analytics marks nothing.
	flag := func(query string, id any) int {
		var v int
		if err := w.shopDB.QueryRow(query, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	restricted := "SELECT processing_restricted FROM customers WHERE id = ?"
	if flag(restricted, a.ID) != 1 || flag(restricted, b.ID) != 0 {
		t.Errorf("processing_restricted: customer %d %d, customer %d %d", a.ID, flag(restricted, a.ID), b.ID, flag(restricted, b.ID))
	}
	var reader shop.Customer
	for _, c := range w.cs[2:] {
		if c.Newsletter {
			reader = c
			break
		}
	}
	if reader.ID == 0 {
		t.Fatal("no seeded customer reads the newsletter")
	}
	suppressed := "SELECT COUNT(*) FROM newsletter WHERE email = ? AND suppressed = 1"
	if flag(suppressed, reader.Email) != 0 {
		t.Fatalf("customer %d's newsletter is suppressed before any request", reader.ID)
	}
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestObjection, SubjectID: w.subjects[reader.ID], Contact: reader.Email, Verified: true, Purpose: "newsletter", Reason: "direct_marketing"})
	if err != nil {
		t.Fatal(err)
	}
	done := w.wait(t, r.ID)
	if done.State != lethe.RequestCompleted {
		t.Fatalf("objection to the newsletter: got %s", done.State)
	}
	if flag(suppressed, reader.Email) != 1 {
		t.Errorf("customer %d objected to the newsletter, which is not suppressed", reader.ID)
	}
	tasks, _ := w.store.Tasks(ctx, r.ID)
	for _, task := range tasks {
		if task.System == "shop" && !strings.Contains(string(task.Report), `"object"`) {
			t.Errorf("the shop's report does not record the objection: %s", task.Report)
		}
	}
}

func dumpShop(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, row := range connectortest.DumpDB(t, db) {
		b.WriteString(row + "\n")
	}
	return b.String()
}

func dumpFiles(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	})
	return b.String()
}
