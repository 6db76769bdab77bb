package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// syncBuffer is a bytes.Buffer safe for the server's and test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is a `lethe serve` running in-process.
type instance struct {
	url     string
	dataDir string
	stdout  *syncBuffer
	stderr  *syncBuffer
	stop    context.CancelFunc
	exit    chan int
}

func testMain(env map[string]string) (*Main, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &Main{Stdout: out, Stderr: errOut, Getenv: func(k string) string { return env[k] }}, out, errOut
}

// serve starts `lethe serve` with args on a free port and waits until it
// listens.
func serve(t *testing.T, dataDir string, env map[string]string, args ...string) *instance {
	t.Helper()
	m, out, errOut := testMain(env)
	listening := make(chan string, 1)
	m.OnListen = func(url string) { listening <- url }
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{dataDir: dataDir, stdout: out, stderr: errOut, stop: cancel, exit: make(chan int, 1)}
	go func() {
		in.exit <- m.Run(ctx, append([]string{"serve", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, args...))
	}()
	select {
	case in.url = <-listening:
	case code := <-in.exit:
		cancel()
		t.Fatalf("serve exited with %d before listening: %s", code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start within 30s")
	}
	t.Cleanup(func() { in.shutdown(t) })
	return in
}

// shutdown stops the server and checks that it exited cleanly.
func (in *instance) shutdown(t *testing.T) {
	t.Helper()
	if in.stop == nil {
		return
	}
	in.stop()
	in.stop = nil
	select {
	case code := <-in.exit:
		if code != 0 {
			t.Errorf("serve exit code: got %d, want 0; stderr: %s", code, in.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop within 30s")
	}
}

func (in *instance) client(t *testing.T, key string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: in.url, APIKey: key, CAFile: filepath.Join(in.dataDir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (in *instance) adminKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.dataDir, adminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// run runs a CLI command against the instance and returns exit code,
// stdout and stderr.
func (in *instance) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	m, out, errOut := testMain(map[string]string{"LETHE_URL": in.url})
	// keys SUBCOMMAND --data-dir DIR …: flags follow the subcommand.
	full := append(append(append([]string{}, args[:2]...), "--data-dir", in.dataDir), args[2:]...)
	code := m.Run(context.Background(), full)
	return code, out.String(), errOut.String()
}

func TestServeFirstStartAndCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	ctx := context.Background()

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode: got %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	for _, f := range []string{adminKeyFile, "ca.key", "server.key", "data.db", "keys.db"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode: got %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
	if !strings.Contains(in.stdout.String(), "CA fingerprint (SHA-256)") || !strings.Contains(in.stdout.String(), filepath.Join(dir, adminKeyFile)) {
		t.Errorf("first start output lacks the CA fingerprint or the admin key path:\n%s", in.stdout.String())
	}

	// Without credentials: 401 everywhere but the probes.
	if _, err := in.client(t, "").WhoAmI(ctx); lethe.ErrorCode(err) != lethe.EUNAUTHORIZED {
		t.Errorf("anonymous whoami: got %v, want unauthorized", err)
	}
	if err := in.client(t, "").Ready(ctx); err != nil {
		t.Errorf("readyz: %v", err)
	}
	// Plain HTTP to the TLS port fails; a client without the CA fails.
	if resp, err := http.Get(strings.Replace(in.url, "https://", "http://", 1) + "/healthz"); err == nil {
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP to the TLS port: got %d, want a failure", resp.StatusCode)
		}
		resp.Body.Close()
	}
	noCA := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	if resp, err := noCA.Get(in.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a client that does not trust the local CA connected")
	}

	me, err := in.client(t, in.adminKey(t)).WhoAmI(ctx)
	if err != nil || me.Role != "admin" {
		t.Fatalf("admin whoami: got %+v, %v", me, err)
	}

	code, out, stderr := in.run(t, "keys", "create", "--name", "shop", "--role", "service", "--expires", "24h")
	if code != 0 {
		t.Fatalf("keys create: exit %d: %s", code, stderr)
	}
	secret := strings.TrimSpace(out)
	svc, err := in.client(t, secret).WhoAmI(ctx)
	if err != nil || svc.Role != "service" || svc.ExpiresAt == nil {
		t.Fatalf("new service key: got %+v, %v", svc, err)
	}
	code, out, _ = in.run(t, "keys", "list")
	if code != 0 || !strings.Contains(out, svc.KeyID) || strings.Contains(out, secret) {
		t.Fatalf("keys list: exit %d, output must list the key and not its secret:\n%s", code, out)
	}
	if code, _, stderr := in.run(t, "keys", "revoke", svc.KeyID); code != 0 {
		t.Fatalf("keys revoke: exit %d: %s", code, stderr)
	}
	if _, err := in.client(t, secret).WhoAmI(ctx); lethe.ErrorCode(err) != lethe.EUNAUTHORIZED {
		t.Errorf("revoked key: got %v, want unauthorized", err)
	}
	if code, _, stderr := in.run(t, "keys", "create", "--name", "x", "--role", "root"); code != 1 || !strings.Contains(stderr, "unknown role") {
		t.Errorf("bad role: got exit %d, %q", code, stderr)
	}
	if code, _, _ := in.run(t, "keys", "create", "--role", "service"); code != 2 {
		t.Errorf("missing --name: got exit %d, want 2", code)
	}
	// A third party's key: the recipient role, bound to a tenant, may ask
	// about forgotten subjects and nothing else.
	code, out, stderr = in.run(t, "keys", "create", "--name", "mailer (processor)", "--role", "recipient", "--tenant", "acme")
	if code != 0 {
		t.Fatalf("keys create --role recipient: exit %d: %s", code, stderr)
	}
	rcpt, err := in.client(t, strings.TrimSpace(out)).WhoAmI(ctx)
	if err != nil || rcpt.Role != "recipient" || rcpt.Tenant != "acme" || fmt.Sprint(rcpt.Permissions) != "[self.read forgotten.check]" {
		t.Errorf("new recipient key: got %+v, %v", rcpt, err)
	}

	// A restart keeps the CA and makes no second admin key.
	fingerprint := in.stdout.String()
	in.shutdown(t)
	again := serve(t, dir, nil)
	if strings.Contains(again.stdout.String(), "Admin API key written") {
		t.Error("restart made another admin key")
	}
	if !strings.Contains(fingerprint, "CA fingerprint") {
		t.Fatal("no fingerprint on first start")
	}
	if _, err := again.client(t, again.adminKey(t)).WhoAmI(ctx); err != nil {
		t.Errorf("admin key after restart: %v", err)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(in.url, "https://"), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A request whose handler is running (it waits for the rest of the
	// body) when the shutdown begins must still be answered.
	body := `{"name":"in flight","role":"service"}`
	head := fmt.Sprintf("POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", in.adminKey(t), len(body))
	if _, err := io.WriteString(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the handler start reading the body
	in.stop()
	time.Sleep(200 * time.Millisecond) // shutdown has begun and must wait for the handler
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request cut off: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("in-flight request: got %d, want 201", resp.StatusCode)
	}
	select {
	case code := <-in.exit:
		in.stop = nil
		if code != 0 {
			t.Fatalf("exit code: got %d, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit after the in-flight request finished")
	}
	if !strings.Contains(in.stderr.String(), `"msg":"stopped"`) {
		t.Error("no clean stop logged")
	}
}

func TestInsecureHTTPOnlyOnLoopback(t *testing.T) {
	m, _, errOut := testMain(nil)
	code := m.Run(context.Background(), []string{"serve", "--data-dir", t.TempDir(), "--addr", "0.0.0.0:0", "--insecure-http"})
	if code != 2 || !strings.Contains(errOut.String(), "loopback") {
		t.Fatalf("got exit %d %q, want 2 and a loopback message", code, errOut.String())
	}
	in := serve(t, filepath.Join(t.TempDir(), "data"), nil, "--insecure-http")
	if !strings.HasPrefix(in.url, "http://127.0.0.1:") {
		t.Fatalf("url: got %q", in.url)
	}
	if !strings.Contains(in.stderr.String(), "PLAIN HTTP") {
		t.Error("no warning logged for plain HTTP")
	}
	c, err := client.New(client.Config{URL: in.url, APIKey: in.adminKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WhoAmI(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"password in flag", nil, []string{"--store", "postgres://u:secret@127.0.0.1/db", "--key-store", "postgres://u@127.0.0.1/keys"}, "password"},
		{"postgres without key store", nil, []string{"--store", "postgres://u@127.0.0.1/db"}, "--key-store"},
		{"same database", nil, []string{"--store", "postgres://u@127.0.0.1/db", "--key-store", "postgres://u@127.0.0.1/db"}, "same database"},
		{"unknown store", nil, []string{"--store", "mysql://x"}, "postgres://"},
		{"bad addr", nil, []string{"--addr", "nowhere"}, "HOST:PORT"},
		{"cert without key", nil, []string{"--tls-cert", "x.pem"}, "together"},
		{"bad log level", nil, []string{"--log-level", "loud"}, "log-level"},
		{"bad env number", map[string]string{"LETHE_RATE_LIMIT": "fast"}, nil, "not a number"},
		{"stray argument", nil, []string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, errOut := testMain(tt.env)
			code := m.Run(context.Background(), append([]string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0"}, tt.args...))
			if code != 2 || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("got exit %d %q, want 2 and %q", code, errOut.String(), tt.want)
			}
			if strings.Contains(errOut.String(), "secret") {
				t.Error("the password reached the error message")
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad config changed the data directory: %d entries", len(entries))
	}
}

func TestMismatchedKeyStoreRefused(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	serve(t, a, nil).shutdown(t)
	serve(t, b, nil).shutdown(t)
	m, _, errOut := testMain(nil)
	code := m.Run(context.Background(), []string{"serve", "--data-dir", a, "--addr", "127.0.0.1:0", "--key-store", filepath.Join(b, "keys.db")})
	if code != 1 || !strings.Contains(errOut.String(), "not a pair") {
		t.Fatalf("got exit %d %q, want 1 and a mismatch message", code, errOut.String())
	}
}

func TestBootstrapRegistersLeftoverAdminKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	secret := in.adminKey(t)
	in.shutdown(t)
	// A start that crashed after writing admin.key but before storing the
	// key looks like this: the file without a store.
	for _, f := range []string{"data.db", "data.db-wal", "data.db-shm", "keys.db", "keys.db-wal", "keys.db-shm", "audit"} {
		os.RemoveAll(filepath.Join(dir, f))
	}
	again := serve(t, dir, nil)
	if _, err := again.client(t, secret).WhoAmI(context.Background()); err != nil {
		t.Fatalf("leftover admin key not registered: %v", err)
	}
}

func TestServeOnPostgres(t *testing.T) {
	data, keys := testsvc.Postgres(t), testsvc.Postgres(t)
	dir := filepath.Join(t.TempDir(), "data")
	// Instances of one deployment share the master key through the
	// environment, as docs/configuration.md says.
	env := map[string]string{"LETHE_STORE": data, "LETHE_KEY_STORE": keys, "LETHE_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
	in := serve(t, dir, env)
	ctx := context.Background()
	admin := in.client(t, in.adminKey(t))
	k, err := admin.CreateKey(ctx, client.KeySpec{Name: "pg", Role: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	if me, err := in.client(t, k.Secret).WhoAmI(ctx); err != nil || me.Role != "auditor" {
		t.Fatalf("got %+v, %v", me, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data.db")); err == nil {
		t.Error("a SQLite data store was made although PostgreSQL was selected")
	}
	// A second instance on the same databases shares keys and makes no
	// second admin key.
	second := serve(t, filepath.Join(t.TempDir(), "data2"), env)
	if _, err := second.client(t, k.Secret).WhoAmI(ctx); err != nil {
		t.Errorf("second instance does not know the key: %v", err)
	}
	if strings.Contains(second.stdout.String(), "Admin API key written") {
		t.Error("second instance made another admin key")
	}
	// A subject stored through one instance is read through the other.
	sub, err := in.client(t, k.Secret).WhoAmI(ctx)
	if err != nil || sub.Role != "auditor" {
		t.Fatal(err)
	}
	svc, err := admin.CreateKey(ctx, client.KeySpec{Name: "pg shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	created, err := in.client(t, svc.Secret).CreateSubject(ctx, map[string]string{"email": "pg@example.com"}, map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := second.client(t, svc.Secret).ReadSubject(ctx, created.ID, client.ReadOptions{}); err != nil || got.Identifiers["email"] != "pg@example.com" {
		t.Fatalf("second instance reading a subject of the first: got %+v, %v", got, err)
	}
	// Both instances append to one audit log in the data store: it holds
	// the events of both and verifies as one.
	in.shutdown(t)
	second.shutdown(t)
	ka, _ := os.ReadFile(filepath.Join(dir, "audit", verifierKeyFile))
	kb, _ := os.ReadFile(filepath.Join(second.dataDir, "audit", verifierKeyFile))
	if len(ka) == 0 || string(ka) != string(kb) {
		t.Errorf("the two instances name different audit logs: %q, %q", ka, kb)
	}
	code, out, cliErr := runCLI(map[string]string{"LETHE_STORE": data, "LETHE_KEY_STORE": keys}, "audit", "verify", "--data-dir", dir, "--json")
	var r struct {
		Entries, Sealed uint64
		Problems        []any
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || len(r.Problems) != 0 || r.Entries < 2 || r.Sealed != r.Entries {
		t.Errorf("audit verify of the shared log: exit %d %s %s", code, out, cliErr)
	}
	code, out, cliErr = runCLI(map[string]string{"LETHE_STORE": data}, "audit", "export", "--data-dir", second.dataDir, "--subject", created.ID)
	if code != 0 || !strings.Contains(out, "subject.create") || !strings.Contains(out, "subject.read") {
		t.Errorf("audit export from the shared log: exit %d %s %s", code, out, cliErr)
	}
	// A third instance without the master key refuses to start and makes
	// no stray keyring.
	third := filepath.Join(t.TempDir(), "data3")
	m, _, errOut := testMain(map[string]string{"LETHE_STORE": data, "LETHE_KEY_STORE": keys})
	if code := m.Run(ctx, []string{"serve", "--data-dir", third, "--addr", "127.0.0.1:0"}); code != 1 || !strings.Contains(errOut.String(), "LETHE_MASTER_KEY") {
		t.Errorf("instance without the master key: got exit %d %q", code, errOut.String())
	}
	if _, err := os.Stat(filepath.Join(third, "master.key")); err == nil {
		t.Error("an instance without the master key made one")
	}
}

func TestDemo(t *testing.T) {
	m, out, errOut := testMain(nil)
	if code := m.Run(context.Background(), []string{"demo"}); code != 0 {
		t.Fatalf("demo exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"401 unauthorized", "role admin", "403 forbidden", "j***@example.com", "customer moved", "404 not_found", "410 gone", "Detokenized for purpose billing", "Stopped cleanly",
		"access        req_", "rectification req_", "objection     req_", "erasure       req_", "The erasure receipt, signed", "subject key destroyed at", "email is now pse_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"bogus"}, 2}, {[]string{"help"}, 0}, {[]string{"version"}, 0}, {[]string{"keys"}, 2}, {[]string{"keys", "rotate"}, 2}, {[]string{"serve", "-h"}, 0}} {
		m, _, _ := testMain(nil)
		if got := m.Run(context.Background(), tt.args); got != tt.code {
			t.Errorf("%v: got exit %d, want %d", tt.args, got, tt.code)
		}
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, err := parseExpiry("48h", now); err != nil || !got.Equal(now.Add(48*time.Hour)) {
		t.Errorf("duration: got %v, %v", got, err)
	}
	if got, err := parseExpiry("2027-01-01T00:00:00Z", now); err != nil || got.Year() != 2027 {
		t.Errorf("time: got %v, %v", got, err)
	}
	for _, bad := range []string{"-1h", "soon", "0s"} {
		if _, err := parseExpiry(bad, now); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
