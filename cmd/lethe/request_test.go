package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/mail"
)

// TestRequestCLI: staff record a request for a person they verified, list
// it, approve, extend and cancel it from the command line; a person makes
// their own request and confirms it with the code from the outbox.
func TestRequestCLI(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	admin := in.client(t, in.adminKey(t))
	svc, _ := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	dpo, _ := admin.CreateKey(ctx, client.KeySpec{Name: "dpo", Role: "dpo"})
	keyFile := filepath.Join(t.TempDir(), "dpo.key")
	os.WriteFile(keyFile, []byte(dpo.Secret), 0o600)
	s, err := in.client(t, svc.Secret).CreateSubject(ctx, map[string]string{"email": "grace@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	contact := filepath.Join(t.TempDir(), "contact")
	os.WriteFile(contact, []byte("grace@example.com\n"), 0o600)

	code, out, errOut := in.run(t, "request", "create", "--key-file", keyFile, "--type", "erasure", "--subject", s.ID, "--contact-file", contact, "--verified", "--json")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	var r lethe.Request
	json.Unmarshal([]byte(out), &r)
	if r.State != lethe.RequestAwaitingApproval || r.SubjectID != s.ID {
		t.Fatalf("create: got %s", out)
	}
	if strings.Contains(out, "grace@example.com") {
		t.Error("the request shows the address")
	}
	steps := [][]string{
		{"request", "list", "--key-file", keyFile, "--due-within", "800h"},
		{"request", "extend", r.ID, "--key-file", keyFile, "--by", "30d", "--reason", "the request spans many systems"},
		{"request", "show", r.ID, "--key-file", keyFile},
		{"request", "reject", r.ID, "--key-file", keyFile, "--reason", "the person could not be identified"},
	}
	wants := []string{r.ID + "  erasure  awaiting_approval", "extended: the request spans many systems", "awaiting_approval", "rejected"}
	for i, args := range steps {
		code, out, errOut := in.run(t, args...)
		if code != 0 || !strings.Contains(out, wants[i]) {
			t.Errorf("%s: exit %d, got %q, want %q; %s", args[1], code, out, wants[i], errOut)
		}
	}
	if code, _, errOut := in.run(t, "request", "extend", r.ID, "--key-file", keyFile, "--by", "30d", "--reason", "late"); code == 0 || !strings.Contains(errOut, "rejected") {
		t.Errorf("extend a rejected request: exit %d, %s", code, errOut)
	}
	// Approved, an erasure runs (here in the vault alone: no data map) and
	// completes with a signed receipt; the subject is gone.
	code, out, errOut = in.run(t, "request", "create", "--key-file", keyFile, "--type", "erasure", "--subject", s.ID, "--contact-file", contact, "--verified", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("create: %s %s", out, errOut)
	}
	if code, out, errOut = in.run(t, "request", "approve", r.ID, "--key-file", keyFile); code != 0 {
		t.Fatalf("approve: %s %s", out, errOut)
	}
	if out := waitRequest(t, in, keyFile, r.ID, "completed"); !strings.Contains(out, "receipt:  signed erasure receipt") {
		t.Errorf("the completed erasure: %s", out)
	}
	if _, err := in.client(t, svc.Secret).ReadSubject(ctx, s.ID, client.ReadOptions{}); err == nil || !strings.Contains(err.Error(), "410") {
		t.Errorf("the subject after the erasure request: %v, want 410 Gone", err)
	}

	// The person's own request, through the self-service API.
	httpc := &http.Client{Transport: selfTransport(t, dir)}
	resp, err := httpc.Post(in.url+"/v1/self/requests", "application/json", strings.NewReader(`{"type":"access","contact":"grace@example.com"}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("self request: %v %v", resp, err)
	}
	var self struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&self)
	resp.Body.Close()
	outbox, _ := mail.NewOutbox(filepath.Join(dir, "outbox"))
	names, _ := outbox.List()
	if len(names) != 1 {
		t.Fatalf("outbox: %d messages, want 1", len(names))
	}
	m, _ := mail.ReadMessage(names[0])
	c := regexp.MustCompile(`your code is: (\d{8})`).FindStringSubmatch(m.Text)
	if m.To != "grace@example.com" || c == nil {
		t.Fatalf("the message: to %q, code found %v", m.To, c != nil)
	}
	resp, err = httpc.Post(in.url+"/v1/self/requests/"+self.ID+"/verify", "application/json", bytes.NewReader([]byte(`{"code":"`+c[1]+`"}`)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("verify: %v %v", resp, err)
	}
	resp.Body.Close()
	if out := waitRequest(t, in, keyFile, self.ID, "completed"); !strings.Contains(out, "(self, by self)") {
		t.Errorf("the person's request: %s", out)
	}
	// The answer: a one-time link to the archive, mailed to the person.
	names, _ = outbox.List()
	m, _ = mail.ReadMessage(names[len(names)-1])
	l := regexp.MustCompile(`(https://\S+/v1/self/downloads/\S+)`).FindStringSubmatch(m.Text)
	if m.To != "grace@example.com" || l == nil || !strings.HasPrefix(l[1], in.url) {
		t.Fatalf("the answer: to %q, link found %v", m.To, l != nil)
	}
	resp, err = httpc.Get(l[1])
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %v %v", resp, err)
	}
	zipped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped))); err != nil || len(zr.File) == 0 || zr.File[len(zr.File)-1].Name != "README.txt" {
		t.Errorf("the archive: %v", err)
	}
	if resp, err = httpc.Get(l[1]); err != nil || resp.StatusCode != 404 {
		t.Errorf("second download: %v %v, want 404", resp, err)
	}
}

// waitRequest shows a request until it reaches state.
func waitRequest(t *testing.T, in *instance, keyFile, id string, state lethe.RequestState) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out, errOut := in.run(t, "request", "show", id, "--key-file", keyFile)
		if code == 0 && strings.Contains(out, "request, "+string(state)+"\n") {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s did not reach %s: %s %s", id, state, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// selfTransport trusts the server's local CA, as a browser given it would.
func selfTransport(t *testing.T, dataDir string) http.RoundTripper {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

// sqliteShop writes the example map cut down to the shop's database on
// SQLite and its uploads, with n customers seeded in both, and returns
// the map's directory and the open database.
func sqliteShop(t *testing.T, n int) (string, *sql.DB, []shop.Customer) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := shop.WriteManifest(dir, shop.SQLiteOnly); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "shop.db")+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := shop.Create(ctx, db, shop.SQLite); err != nil {
		t.Fatal(err)
	}
	cs, err := shop.Seed(ctx, db, shop.SQLite, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := shop.SeedFiles(filepath.Join(dir, "uploads"), cs); err != nil {
		t.Fatal(err)
	}
	return dir, db, cs
}

// TestErasureAcrossDataMap: `serve --datamap` carries an approved erasure
// out in the shop's database and uploads, then destroys the subject's key;
// `request show --json` gives the signed receipt.
func TestErasureAcrossDataMap(t *testing.T) {
	ctx := context.Background()
	dir, db, cs := sqliteShop(t, 4)
	data := filepath.Join(t.TempDir(), "data")
	in := serve(t, data, nil, "--datamap", filepath.Join(dir, "lethe.yaml"))
	admin := in.client(t, in.adminKey(t))
	svc, _ := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	dpo, _ := admin.CreateKey(ctx, client.KeySpec{Name: "dpo", Role: "dpo"})
	keyFile := filepath.Join(t.TempDir(), "dpo.key")
	os.WriteFile(keyFile, []byte(dpo.Secret), 0o600)
	c := cs[1]
	s, err := in.client(t, svc.Secret).CreateSubject(ctx, shop.Identifiers(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec("UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID)
	contact := filepath.Join(t.TempDir(), "contact")
	os.WriteFile(contact, []byte(c.Email), 0o600)
	code, out, errOut := in.run(t, "request", "create", "--key-file", keyFile, "--type", "erasure", "--subject", s.ID, "--contact-file", contact, "--verified", "--json")
	var r lethe.Request
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("create: %s %s", out, errOut)
	}
	if code, out, errOut := in.run(t, "request", "approve", r.ID, "--key-file", keyFile); code != 0 {
		t.Fatalf("approve: %s %s", out, errOut)
	}
	waitRequest(t, in, keyFile, r.ID, "completed")
	_, out, _ = in.run(t, "request", "show", r.ID, "--key-file", keyFile, "--json")
	var view struct {
		Receipt json.RawMessage     `json:"receipt"`
		Tasks   []lethe.RequestTask `json:"tasks"`
	}
	json.Unmarshal([]byte(out), &view)
	var b64 string
	json.Unmarshal(view.Receipt, &b64)
	if len(view.Tasks) != 2 || b64 == "" {
		t.Fatalf("show: %s", out)
	}
	for _, task := range view.Tasks {
		if task.State != lethe.TaskDone {
			t.Errorf("system %s: %s %s", task.System, task.State, task.Error)
		}
	}
	var email string
	if err := db.QueryRow("SELECT email FROM customers WHERE id = ?", c.ID).Scan(&email); err != nil || email == c.Email || !strings.HasPrefix(email, "pse_") {
		t.Errorf("the customer's email after erasure: %v, want a pseudonym", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "uploads", "avatars", strconv.FormatInt(c.ID, 10))); !os.IsNotExist(err) && c.Avatar != "" {
		t.Errorf("the avatar survived: %v", err)
	}
}

// TestForgetReplay: a shop database restored from a backup taken before an
// erasure gets the person back; `lethe forget replay` erases them again,
// and run again finds nothing.
func TestForgetReplay(t *testing.T) {
	ctx := context.Background()
	dir, db, cs := sqliteShop(t, 4)
	data := filepath.Join(t.TempDir(), "data")
	in := serve(t, data, nil, "--datamap", filepath.Join(dir, "lethe.yaml"))
	admin := in.client(t, in.adminKey(t))
	svc, _ := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	c := cs[2]
	s, err := in.client(t, svc.Secret).CreateSubject(ctx, shop.Identifiers(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec("UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID)
	backup := filepath.Join(t.TempDir(), "shop-backup.db")
	if _, err := db.Exec("VACUUM INTO ?", backup); err != nil {
		t.Fatal(err)
	}
	// The person is erased in Lethe (and, by the app, in its database).
	if _, err := in.client(t, svc.Secret).EraseSubject(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE customers SET email = 'gone@example.invalid', lethe_id = 'gone' WHERE id = ?", c.ID); err != nil {
		t.Fatal(err)
	}
	// Restore the backup: the person is back.
	db.Close()
	raw, _ := os.ReadFile(backup)
	os.Remove(filepath.Join(dir, "shop.db-wal"))
	os.Remove(filepath.Join(dir, "shop.db-shm"))
	if err := os.WriteFile(filepath.Join(dir, "shop.db"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() (int, string, string) {
		m, out, errOut := testMain(nil)
		code := m.Run(ctx, []string{"forget", "replay", "--manifest", filepath.Join(dir, "lethe.yaml"), "--data-dir", data})
		return code, out.String(), errOut.String()
	}
	code, out, errOut := run()
	if code != 0 || !strings.Contains(out, "1 subjects on the forget list") || !strings.Contains(out, "shop") || !strings.Contains(out, "not reachable by subject ID in shop: table newsletter (by email)") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	if !regexp.MustCompile(`shop\s+1 subjects\s+[1-9]`).MatchString(out) {
		t.Errorf("replay found nothing in the restored shop:\n%s", out)
	}
	restored, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, "shop.db"))
	defer restored.Close()
	var email string
	restored.QueryRow("SELECT email FROM customers WHERE id = ?", c.ID).Scan(&email)
	if email == c.Email {
		t.Error("the restored customer still has their address")
	}
	if code, out, _ := run(); code != 0 || !regexp.MustCompile(`shop\s+0 subjects\s+0`).MatchString(out) {
		t.Errorf("second replay: exit %d\n%s", code, out)
	}
}
