package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/client"
)

// runCLI runs lethe with args and env and returns exit code, stdout and
// stderr.
func runCLI(env map[string]string, args ...string) (int, string, string) {
	m, out, errOut := testMain(env)
	code := m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// keyringLines returns the key lines of a keyring file.
func keyringLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")[1:]
}

// subjectClient returns a client acting in tenant with a service key.
func (in *instance) subjectClient(t *testing.T, secret, tenant string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: in.url, APIKey: secret, CAFile: filepath.Join(in.dataDir, "ca.crt"), Tenant: tenant})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRotateMasterCommand(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	keyring := filepath.Join(dir, "master.key")
	in := serve(t, dir, nil)
	svc, err := in.client(t, in.adminKey(t)).CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]string{} // tenant → subject ID
	for _, tenant := range []string{"default", "acme"} {
		s, err := in.subjectClient(t, svc.Secret, tenant).CreateSubject(ctx, map[string]string{"email": tenant + "@example.com"}, map[string]any{"name": "Jane " + tenant})
		if err != nil {
			t.Fatal(err)
		}
		subjects[tenant] = s.ID
	}
	readAll := func(t *testing.T, in *instance) {
		t.Helper()
		for tenant, id := range subjects {
			got, err := in.subjectClient(t, svc.Secret, tenant).ReadSubject(ctx, id, client.ReadOptions{})
			if err != nil || got.Identifiers["email"] != tenant+"@example.com" {
				t.Fatalf("read %s in %s: got %+v, %v", id, tenant, got, err)
			}
		}
	}
	in.shutdown(t)
	oldKey := keyringLines(t, keyring)

	// Offline: rotate, then serve again.
	code, out, stderr := runCLI(nil, "keys", "rotate-master", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("rotate-master: exit %d: %s", code, stderr)
	}
	// Five deployment secrets (blind-index root, token root, audit signing
	// key, consent proof key, requests key) and two tenant keys.
	if !strings.Contains(stderr, "7 keys to rewrap") || !strings.Contains(stderr, "rewrapped 7/7") {
		t.Errorf("progress: got %q, want the count and rewrapped 7/7", stderr)
	}
	lines := keyringLines(t, keyring)
	if len(lines) != 2 || lines[0] != oldKey[0] {
		t.Fatalf("keyring after rotation: got %d keys, want the old one first and a new one", len(lines))
	}
	newID, _, _ := strings.Cut(lines[1], " ")
	for _, want := range []string{"Rotated the master key: " + newID, "7 keys were rewrapped", "Back up " + keyring + " again"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary: got %q, want it to contain %q", out, want)
		}
	}
	again := serve(t, dir, nil)
	readAll(t, again)
	again.shutdown(t)

	// Rewrap-only finds nothing left, and adds no key, however often it runs.
	before, _ := os.ReadFile(keyring)
	for range 2 {
		code, out, stderr := runCLI(nil, "keys", "rotate-master", "--data-dir", dir, "--rewrap-only")
		if code != 0 || !strings.Contains(stderr, "no keys to rewrap") || !strings.Contains(out, "Rewrapped 0 keys under the current master key "+newID) {
			t.Fatalf("rewrap-only: got exit %d, %q, %q", code, out, stderr)
		}
		if after, _ := os.ReadFile(keyring); !bytes.Equal(before, after) {
			t.Fatal("rewrap-only changed the keyring")
		}
	}

	// Online: a server started before the rotation, with no tenant key
	// unwrapped yet, follows the keyring file.
	online := serve(t, dir, nil)
	code, _, stderr = runCLI(map[string]string{"LETHE_DATA_DIR": dir}, "keys", "rotate-master")
	if code != 0 || !strings.Contains(stderr, "rewrapped 7/7") {
		t.Fatalf("rotate-master beside a server: got exit %d: %s", code, stderr)
	}
	readAll(t, online)
	if _, err := online.subjectClient(t, svc.Secret, "globex").CreateSubject(ctx, map[string]string{"email": "globex@example.com"}, nil); err != nil {
		t.Fatalf("create after an online rotation: %v", err)
	}
	// The server wrapped globex's new key under the new master key.
	if code, _, stderr := runCLI(nil, "keys", "rotate-master", "--data-dir", dir, "--rewrap-only"); code != 0 || !strings.Contains(stderr, "no keys to rewrap") {
		t.Errorf("rewrap-only after an online rotation: got exit %d, %q, want nothing left", code, stderr)
	}
	if n := len(keyringLines(t, keyring)); n != 3 {
		t.Errorf("keyring: got %d keys, want 3", n)
	}
	online.shutdown(t)
	readAll(t, serve(t, dir, nil))
}

func TestRotateMasterCommandRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	serve(t, dir, nil).shutdown(t)
	empty := t.TempDir()
	tests := []refusal{
		{"master key from the environment", map[string]string{"LETHE_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, []string{"--data-dir", dir}, 1, "LETHE_MASTER_KEY"},
		{"rewrap-only with the environment key", map[string]string{"LETHE_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, []string{"--data-dir", dir, "--rewrap-only"}, 1, "cannot be rotated"},
		{"no keyring", nil, []string{"--data-dir", empty}, 1, "no master key"},
		{"no key store", nil, []string{"--data-dir", dir, "--key-store", filepath.Join(empty, "keys.db")}, 1, "open key store"},
		{"password in flag", nil, []string{"--data-dir", dir, "--key-store", "postgres://u:secret@127.0.0.1/keys"}, 2, "password"},
		{"stray argument", nil, []string{"--data-dir", dir, "extra"}, 2, "unexpected argument"},
	}
	checkRefusals(t, "rotate-master", tests, empty)
	if n := len(keyringLines(t, filepath.Join(dir, "master.key"))); n != 1 {
		t.Errorf("keyring: got %d keys, want 1: no refused rotation may add one", n)
	}

	code, _, stderr := runCLI(nil, "keys", "rotate-master", "-h")
	if code != 0 {
		t.Errorf("-h: got exit %d, want 0", code)
	}
	for _, want := range []string{"--rewrap-only", "restarted", "Back up master.key again"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("help: got %q, want it to contain %q", stderr, want)
		}
	}
}

// refusal is a key-admin command line that must be refused.
type refusal struct {
	name string
	env  map[string]string
	args []string
	code int
	want string
}

// checkRefusals runs `lethe keys VERB` with each refused command line: it
// must exit with the code and message given, never echo the password of a
// DSN, and leave the directory empty untouched.
func checkRefusals(t *testing.T, verb string, tests []refusal, empty string) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(tt.env, append([]string{"keys", verb}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("got exit %d %q, want %d and %q", code, stderr, tt.code, tt.want)
			}
			if strings.Contains(stderr, "secret") {
				t.Error("the password reached the error message")
			}
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a refused rotation wrote into the directory: %d entries", len(entries))
	}
}
