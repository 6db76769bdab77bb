package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"filippo.io/age"

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
	keyFile := newKeyFile(t, admin, "dpo")
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
	// The person was told of the extension, the rejection and the
	// erasure, then sent the code for their own request.
	names, _ := outbox.List()
	var subjects []string
	for _, n := range names {
		m, _ := mail.ReadMessage(n)
		subjects = append(subjects, m.Subject)
	}
	if len(names) != 4 || !strings.Contains(subjects[0], "takes longer") || !strings.Contains(subjects[1], "rejected") || !strings.Contains(subjects[2], "is done") {
		t.Fatalf("outbox: %q, want the extension, the rejection, the erasure and a code", subjects)
	}
	m, _ := mail.ReadMessage(names[3])
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
	dir, db, cs := sqliteShop(t, 4)
	c := cs[1]
	in, keyFile, r := verifiedErasure(t, dir, filepath.Join(t.TempDir(), "data"), db, c)
	if code, out, errOut := in.run(t, "request", "approve", r.ID, "--key-file", keyFile); code != 0 {
		t.Fatalf("approve: %s %s", out, errOut)
	}
	waitRequest(t, in, keyFile, r.ID, "completed")
	_, out, _ := in.run(t, "request", "show", r.ID, "--key-file", keyFile, "--json")
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

// TestRequestWait: --wait and `request wait` follow a request until it
// settles, print a line per change when stdout is not a terminal, and exit
// 0 completed, 4 rejected, 5 cancelled, 6 on --timeout; with --json they
// print only the request's JSON.
func TestRequestWait(t *testing.T) {
	ctx := context.Background()
	in := serve(t, filepath.Join(t.TempDir(), "data"), nil)
	admin := in.client(t, in.adminKey(t))
	svc, _ := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	keyFile := newKeyFile(t, admin, "dpo")
	contact := filepath.Join(t.TempDir(), "contact")
	os.WriteFile(contact, []byte("ada@example.com\n"), 0o600)
	subjects := 0
	create := func(t *testing.T, extra ...string) (int, string, string) {
		t.Helper()
		subjects++
		s, err := in.client(t, svc.Secret).CreateSubject(ctx, map[string]string{"email": "ada" + strconv.Itoa(subjects) + "@example.com"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return in.run(t, append([]string{"request", "create", "--key-file", keyFile, "--type", "erasure", "--subject", s.ID, "--contact-file", contact, "--verified"}, extra...)...)
	}
	newRequest := func(t *testing.T) string {
		t.Helper()
		code, out, errOut := create(t, "--json")
		var r lethe.Request
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("create: exit %d: %s %s", code, out, errOut)
		}
		return r.ID
	}
	noPII := func(t *testing.T, outs ...string) {
		t.Helper()
		for i, s := range outs {
			if strings.Contains(s, "@example.com") {
				t.Errorf("an address shows in output #%d", i)
			}
		}
	}

	t.Run("approve", func(t *testing.T) {
		id := newRequest(t)
		code, out, errOut := in.run(t, "request", "approve", id, "--key-file", keyFile, "--wait")
		if code != 0 {
			t.Fatalf("approve --wait: got exit %d, want 0: %s %s", code, out, errOut)
		}
		// Not a terminal: lines, no cursor movement, each change once,
		// then the request as it ended.
		if strings.Contains(out, "\x1b") {
			t.Errorf("escape sequences in the output of a pipe: %q", out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != "request "+id+": approved" && lines[0] != "request "+id+": running" && lines[0] != "request "+id+": completed" {
			t.Errorf("first line: got %q, want the request's state", lines[0])
		}
		for i := 1; i < len(lines); i++ {
			if strings.HasPrefix(lines[i], "request ") && lines[i] == lines[i-1] {
				t.Errorf("line %d repeats: %q", i, lines[i])
			}
		}
		if !strings.Contains(out, "request "+id+": completed\n") || !strings.Contains(out, id+": erasure request, completed\n") || !strings.Contains(out, "receipt:  signed erasure receipt") {
			t.Errorf("approve --wait output lacks the completion or the final request:\n%s", out)
		}
		noPII(t, out, errOut)
		// Following a completed request returns at once.
		if code, out, _ := in.run(t, "request", "wait", id, "--key-file", keyFile, "--json"); code != 0 {
			t.Errorf("wait on a completed request: exit %d", code)
		} else {
			var v client.RequestView
			if err := json.Unmarshal([]byte(out), &v); err != nil || v.State != lethe.RequestCompleted || v.ID != id {
				t.Errorf("wait --json: got %v %q, want the completed request's JSON alone", err, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		id := newRequest(t)
		code, out, errOut := in.run(t, "request", "approve", id, "--key-file", keyFile, "--wait", "--json")
		var v client.RequestView
		if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.State != lethe.RequestCompleted || len(v.Receipt) == 0 {
			t.Errorf("approve --wait --json: exit %d, %v: %s %s", code, err, out, errOut)
		}
		noPII(t, out, errOut)
	})
	for _, tc := range []struct {
		close string
		want  int
		state string
	}{
		{"reject", exitRejected, "rejected"},
		{"cancel", exitCancelled, "cancelled"},
	} {
		t.Run(tc.close, func(t *testing.T) {
			id := newRequest(t)
			if code, _, errOut := in.run(t, "request", tc.close, id, "--key-file", keyFile, "--reason", "a test"); code != 0 {
				t.Fatalf("%s: %s", tc.close, errOut)
			}
			code, out, errOut := in.run(t, "request", "watch", id, "--key-file", keyFile)
			if code != tc.want || !strings.Contains(out, "request "+id+": "+tc.state+"\n") || !strings.Contains(errOut, "was "+tc.state) {
				t.Errorf("wait on a %s request: got exit %d, want %d: %s %s", tc.state, code, tc.want, out, errOut)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		// An erasure awaiting approval goes nowhere by itself.
		start := time.Now()
		code, out, errOut := create(t, "--wait", "--timeout", "600ms")
		if code != exitTimeout || !strings.Contains(out, ": awaiting_approval\n") || !strings.Contains(errOut, "timed out after 600ms") || !strings.Contains(errOut, "goes on in the server") {
			t.Errorf("create --wait --timeout: got exit %d, want %d: %s %s", code, exitTimeout, out, errOut)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("the timeout took %s", d)
		}
		noPII(t, out, errOut)
		id := newRequest(t)
		code, out, _ = in.run(t, "request", "wait", id, "--key-file", keyFile, "--timeout", "300ms", "--json")
		var v client.RequestView
		if err := json.Unmarshal([]byte(out), &v); code != exitTimeout || err != nil || v.State != lethe.RequestAwaitingApproval {
			t.Errorf("wait --json on timeout: exit %d, %v: %q, want the request's JSON as last read", code, err, out)
		}
	})
	t.Run("usage", func(t *testing.T) {
		id := newRequest(t)
		for _, args := range [][]string{
			{"request", "show", id, "--key-file", keyFile, "--wait"},
			{"request", "wait", id, "--key-file", keyFile, "--timeout", "0s"},
			{"request", "wait", "--key-file", keyFile},
		} {
			if code, _, _ := in.run(t, args...); code != 2 {
				t.Errorf("%v: got exit %d, want 2", args, code)
			}
		}
	})
}

// crmSpreadsheet is the sample's manual system, for a data map whose
// erasures wait for a person.
const crmSpreadsheet = `  - name: crm_spreadsheet
    kind: manual
    description: The sales team's spreadsheet of wholesale customers.
    purposes: [orders]
    manual:
      assignee: sales-ops@shop.example
      checklist:
        - Delete every row about the person.
      categories: [user.name, user.contact.email]
`

// TestRequestWaitPartial: an erasure across a data map with a manual
// system is partially completed until a person does the checklist:
// approve --wait and retry --wait exit 3 naming the waiting system; done
// --wait follows it to completion.
func TestRequestWaitPartial(t *testing.T) {
	dir, db, cs := sqliteShop(t, 3)
	if err := shop.WriteManifest(dir, func(doc string) string { return shop.SQLiteOnly(doc) + crmSpreadsheet }); err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	in, keyFile, r := verifiedErasure(t, dir, filepath.Join(t.TempDir(), "data"), db, c)
	noPII := func(out, errOut string) {
		t.Helper()
		// Say which value leaked where, never the output that holds it.
		for where, o := range map[string]string{"stdout": out, "stderr": errOut} {
			if strings.Contains(o, c.Email) {
				t.Errorf("the customer's email shows on %s", where)
			}
			if strings.Contains(o, c.FullName) {
				t.Errorf("the customer's name shows on %s", where)
			}
		}
	}

	code, out, errOut := in.run(t, "request", "approve", r.ID, "--key-file", keyFile, "--wait")
	if code != exitPartial {
		t.Fatalf("approve --wait: got exit %d, want %d: %s %s", code, exitPartial, out, errOut)
	}
	for _, want := range []string{
		"system shop: done (1 attempts)\n",
		"system uploads: done (1 attempts)\n",
		"system crm_spreadsheet: waiting",
		"request " + r.ID + ": partially_completed, systems done 2/3\n",
		r.ID + ": erasure request, partially_completed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("approve --wait output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "partially completed, systems done 2/3") || !strings.Contains(errOut, "lethe request done "+r.ID) {
		t.Errorf("approve --wait: stderr %q", errOut)
	}
	noPII(out, errOut)

	// Retried, the waiting system still waits.
	if code, out, errOut := in.run(t, "request", "retry", r.ID, "--key-file", keyFile, "--wait"); code != exitPartial {
		t.Errorf("retry --wait: got exit %d, want %d: %s %s", code, exitPartial, out, errOut)
	}
	// The person did the checklist: done --wait follows the request past
	// the partially completed state it is still in to its completion.
	code, out, errOut = in.run(t, "request", "done", r.ID, "--key-file", keyFile, "--system", "crm_spreadsheet", "--count", "1", "--wait", "--json")
	var v client.RequestView
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.State != lethe.RequestCompleted || len(v.Tasks) != 3 {
		t.Fatalf("done --wait --json: exit %d, %v: %s %s", code, err, out, errOut)
	}
	noPII(out, errOut)
}

// TestRequestProgressTerminal: on a terminal the block of progress is
// redrawn in place, its lines cut to the terminal's width.
func TestRequestProgressTerminal(t *testing.T) {
	var b bytes.Buffer
	p := &requestProgress{w: &b, fd: 0, last: map[string]string{}}
	v := &client.RequestView{Request: lethe.Request{ID: "req_aaaaaaaaaaaaaaaaaaaaaaaaaa", State: lethe.RequestRunning}, Tasks: []lethe.RequestTask{
		{System: "shop", State: lethe.TaskDone, Attempts: 1},
		{System: "uploads", State: lethe.TaskPending, Attempts: 3, Error: "uploads: unreachable: a long error that does not fit on one line of the terminal"},
	}}
	p.redraw(v, 100, 12*time.Second)
	first := b.String()
	if strings.Contains(first, "\x1b[") {
		t.Errorf("the first draw moves the cursor: %q", first)
	}
	lines := strings.Split(strings.TrimSuffix(first, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "[############............] systems done 1/2  12s") || lines[1] != "  shop     done" || !strings.HasSuffix(lines[2], "…") {
		t.Errorf("the block: %q", lines)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 99 {
			t.Errorf("a line of %d runes on a terminal 100 wide: %q", n, l)
		}
	}
	b.Reset()
	v.State, v.Tasks[1].State, v.Tasks[1].Error = lethe.RequestCompleted, lethe.TaskDone, ""
	p.redraw(v, 100, 13*time.Second)
	if !strings.HasPrefix(b.String(), "\x1b[3A\r\x1b[J") || !strings.Contains(b.String(), "systems done 2/2") {
		t.Errorf("the redraw: %q, want the cursor moved up over the 3 lines drawn", b.String())
	}
	b.Reset()
	p.end()
	if b.String() != "\x1b[3A\r\x1b[J" {
		t.Errorf("end: %q", b.String())
	}
}

// TestRequestCLIPassphrase: staff record an access request with the
// passphrase the person chose, from a file; the archive mailed to them is
// encrypted to it.
func TestRequestCLIPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	admin := in.client(t, in.adminKey(t))
	keyFile := newKeyFile(t, admin, "dpo")
	contact := filepath.Join(t.TempDir(), "contact")
	os.WriteFile(contact, []byte("ada@example.com\n"), 0o600)
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("a passphrase ada chose\n"), 0o600)

	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("short\n"), 0o600)
	if code, _, errOut := in.run(t, "request", "create", "--key-file", keyFile, "--type", "access", "--contact-file", contact, "--verified", "--passphrase-file", short); code == 0 || !strings.Contains(errOut, "passphrase") {
		t.Errorf("a short passphrase: exit %d, %s", code, errOut)
	}
	code, out, errOut := in.run(t, "request", "create", "--key-file", keyFile, "--type", "access", "--contact-file", contact, "--verified", "--passphrase-file", pass, "--wait")
	if code != 0 || strings.Contains(out, "a passphrase ada chose") {
		t.Fatalf("create --wait: exit %d: %s", code, errOut)
	}
	outbox, _ := mail.NewOutbox(filepath.Join(dir, "outbox"))
	names, _ := outbox.List()
	m, _ := mail.ReadMessage(names[len(names)-1])
	l := regexp.MustCompile(`(https://\S+/v1/self/downloads/\S+)`).FindStringSubmatch(m.Text)
	if l == nil {
		t.Fatal("no link was mailed")
	}
	resp, err := (&http.Client{Transport: selfTransport(t, dir)}).Get(l[1])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id, _ := age.NewScryptIdentity("a passphrase ada chose")
	plain, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		t.Fatalf("the archive does not open with the passphrase: %v", err)
	}
	zipped, _ := io.ReadAll(plain)
	if _, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped))); err != nil {
		t.Errorf("the decrypted archive: %v", err)
	}
}

// verifiedErasure serves the data map in dir from the data directory
// data, makes customer c of the shop's database db a subject linked from
// it, and records a staff-verified erasure of them; it returns the server,
// a DPO's key file and the request.
func verifiedErasure(t *testing.T, dir, data string, db *sql.DB, c shop.Customer) (*instance, string, lethe.Request) {
	t.Helper()
	ctx := context.Background()
	in := serve(t, data, nil, "--datamap", filepath.Join(dir, "lethe.yaml"))
	admin := in.client(t, in.adminKey(t))
	svc, _ := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	keyFile := newKeyFile(t, admin, "dpo")
	s, err := in.client(t, svc.Secret).CreateSubject(ctx, shop.Identifiers(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	contact := filepath.Join(t.TempDir(), "contact")
	os.WriteFile(contact, []byte(c.Email), 0o600)
	code, out, errOut := in.run(t, "request", "create", "--key-file", keyFile, "--type", "erasure", "--subject", s.ID, "--contact-file", contact, "--verified", "--json")
	var r lethe.Request
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("create: %s %s", out, errOut)
	}
	return in, keyFile, r
}

// TestRequestCLIStdinOnce: standard input can feed one file flag of
// create, and an empty passphrase file is refused: neither may leave a
// value silently empty (an archive sent unencrypted). Both are usage
// errors, found before anything is sent.
func TestRequestCLIStdinOnce(t *testing.T) {
	in := serve(t, filepath.Join(t.TempDir(), "data"), nil)
	admin := in.client(t, in.adminKey(t))
	keyFile := newKeyFile(t, admin, "dpo")
	contact := filepath.Join(t.TempDir(), "contact")
	os.WriteFile(contact, []byte("ada@example.com\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	newline := filepath.Join(t.TempDir(), "newline")
	os.WriteFile(newline, []byte("\n"), 0o600)

	base := []string{"request", "create", "--key-file", keyFile, "--type", "access", "--verified"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"contact and passphrase", []string{"--contact-file", "-", "--passphrase-file", "-"}, "only one of --contact-file, --passphrase-file can read standard input"},
		{"contact and values", []string{"--contact-file", "-", "--values-file", "-"}, "only one of --contact-file, --values-file can read standard input"},
		{"values and passphrase", []string{"--contact-file", contact, "--values-file", "-", "--passphrase-file", "-"}, "only one of --values-file, --passphrase-file can read standard input"},
		{"all three", []string{"--contact-file", "-", "--values-file", "-", "--passphrase-file", "-"}, "only one of --contact-file, --values-file, --passphrase-file can read standard input"},
		{"empty passphrase file", []string{"--contact-file", contact, "--passphrase-file", empty}, "--passphrase-file holds no passphrase"},
		{"passphrase file of a newline", []string{"--contact-file", contact, "--passphrase-file", newline}, "--passphrase-file holds no passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := in.run(t, append(append([]string{}, base...), tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("got exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
			if out != "" {
				t.Errorf("stdout: got %q, want nothing", out)
			}
		})
	}
	// Nothing was recorded.
	secret, _ := os.ReadFile(keyFile)
	list, err := in.client(t, string(secret)).ListRequests(context.Background(), lethe.RequestFilter{})
	if err != nil || len(list) != 0 {
		t.Errorf("requests recorded: got %d (%v), want 0", len(list), err)
	}
}

// TestOldArchivesRemoved: access archives an earlier version kept as files
// in <data-dir>/archives are removed when the server starts, with one log
// line counting the requests whose archives went and nothing of what they
// held; a later start has nothing to remove and says nothing.
func TestOldArchivesRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	serve(t, dir, nil).shutdown(t)

	const held = "ada@example.com, 12 Analytical Row"
	archives := filepath.Join(dir, "archives")
	for _, id := range []string{"req_aaaaaaaaaaaaaaaaaaaaaaaaaa", "req_bbbbbbbbbbbbbbbbbbbbbbbbbb"} {
		if err := os.MkdirAll(filepath.Join(archives, id), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"archive.zip.sealed": held, "tenant": "default", "download.json": `{"note":"` + held + `"}`} {
			if err := os.WriteFile(filepath.Join(archives, id, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(archives, "stray"), []byte(held), 0o600); err != nil {
		t.Fatal(err)
	}

	in := serve(t, dir, nil)
	if _, err := os.Lstat(archives); !os.IsNotExist(err) {
		t.Errorf("%s after start: got %v, want it gone", archives, err)
	}
	in.shutdown(t)
	logs := in.stderr.String()
	var removed []map[string]any
	for line := range strings.SplitSeq(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(fmt.Sprint(rec["msg"]), "access archives from an earlier version removed") {
			removed = append(removed, rec)
		}
	}
	if len(removed) != 1 || removed[0]["level"] != "INFO" || removed[0]["requests"] != float64(2) {
		t.Errorf("log lines of the removal: got %v, want one at INFO with requests 2", removed)
	}
	if strings.Contains(logs, held) {
		t.Error("the log holds what an archive held")
	}

	again := serve(t, dir, nil)
	again.shutdown(t)
	if strings.Contains(again.stderr.String(), "access archives") {
		t.Error("a later start logs a removal again")
	}
}

// newKeyFile creates an API key of role and returns a file holding its
// secret, as the CLI's --key-file takes it.
func newKeyFile(t *testing.T, admin *client.Client, role string) string {
	t.Helper()
	k, err := admin.CreateKey(context.Background(), client.KeySpec{Name: role, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), role+".key")
	if err := os.WriteFile(path, []byte(k.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
