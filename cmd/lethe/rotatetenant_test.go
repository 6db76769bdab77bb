package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
)

func TestRotateTenantCommand(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	svc, err := in.client(t, in.adminKey(t)).CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	type subject struct{ tenant, email string }
	subjects := map[string]subject{}
	create := func(t *testing.T, in *instance, tenant string, n int) string {
		t.Helper()
		email := fmt.Sprintf("person%d@%s.example", n, tenant)
		s, err := in.subjectClient(t, svc.Secret, tenant).CreateSubject(ctx, map[string]string{"email": email}, map[string]any{"n": n})
		if err != nil {
			t.Fatalf("create %d in %s: %v", n, tenant, err)
		}
		subjects[s.ID] = subject{tenant, email}
		return s.ID
	}
	for i := range 5 {
		create(t, in, "acme", i)
	}
	create(t, in, "default", 0)
	erased := create(t, in, "acme", 99)
	if _, err := in.subjectClient(t, svc.Secret, "acme").EraseSubject(ctx, erased); err != nil {
		t.Fatal(err)
	}
	delete(subjects, erased)
	readAll := func(t *testing.T, in *instance) {
		t.Helper()
		for id, s := range subjects {
			got, err := in.subjectClient(t, svc.Secret, s.tenant).ReadSubject(ctx, id, client.ReadOptions{})
			if err != nil || got.Identifiers["email"] != s.email {
				t.Fatalf("read %s in %s: got %+v, %v", id, s.tenant, got, err)
			}
		}
		_, err := in.subjectClient(t, svc.Secret, "acme").ReadSubject(ctx, erased, client.ReadOptions{})
		if lethe.ErrorCode(err) != lethe.EGONE {
			t.Fatalf("read the erased subject: got %v, want gone", err)
		}
	}
	rotate := func(t *testing.T, env map[string]string, wantOut ...string) {
		t.Helper()
		code, out, stderr := runCLI(env, "keys", "rotate-tenant", "--data-dir", dir, "--tenant", "acme")
		if code != 0 {
			t.Fatalf("rotate-tenant: exit %d: %s", code, stderr)
		}
		for _, want := range wantOut {
			if !strings.Contains(out+stderr, want) {
				t.Errorf("rotate-tenant: got %q and %q, want %q", out, stderr, want)
			}
		}
	}

	// Beside the running server, which keeps reading, finding and making
	// subjects of the tenant at once, without a restart.
	rotate(t, nil, "5 subject keys to rewrap", "rewrapped 5/5",
		"Rotated the key of tenant acme: version 2 is current, 5 subject keys were rewrapped under it, and 1 older versions were deleted.")
	readAll(t, in)
	create(t, in, "acme", 10)
	readAll(t, in)
	rotate(t, map[string]string{"LETHE_DATA_DIR": dir}, "rewrapped 6/6", "version 3 is current, 6 subject keys")

	// Offline, then serve again.
	in.shutdown(t)
	rotate(t, nil, "version 4 is current, 6 subject keys")
	again := serve(t, dir, nil)
	readAll(t, again)
	create(t, again, "acme", 11)
	readAll(t, again)

	// A tenant without subjects has nothing to rotate; another tenant's
	// rotation leaves acme as it is.
	code, _, stderr := runCLI(nil, "keys", "rotate-tenant", "--data-dir", dir, "--tenant", "initech")
	if code != 1 || !strings.Contains(stderr, "no key yet") {
		t.Errorf("tenant without subjects: got exit %d %q", code, stderr)
	}
	code, out, _ := runCLI(nil, "keys", "rotate-tenant", "--data-dir", dir, "--tenant", "default")
	if code != 0 || !strings.Contains(out, "tenant default: version 2 is current, 1 subject keys") {
		t.Errorf("rotate default: got exit %d %q", code, out)
	}
	readAll(t, again)

	// Another deployment's master key opens no version: nothing changes.
	code, _, stderr = runCLI(map[string]string{"LETHE_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
		"keys", "rotate-tenant", "--data-dir", dir, "--tenant", "acme")
	if code != 1 || !strings.Contains(stderr, "cannot open its version 4") {
		t.Errorf("foreign master key: got exit %d %q", code, stderr)
	}
	rotate(t, nil, "version 5 is current, 7 subject keys")
	readAll(t, again)
}

func TestRotateTenantCommandRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	serve(t, dir, nil).shutdown(t)
	empty := t.TempDir()
	tests := []refusal{
		{"no tenant", nil, []string{"--data-dir", dir}, 2, "needs --tenant"},
		{"invalid tenant", nil, []string{"--data-dir", dir, "--tenant", "Acme Corp"}, 2, "--tenant: tenant must be"},
		{"no keyring", nil, []string{"--data-dir", empty, "--tenant", "default"}, 1, "no master key"},
		{"no key store", nil, []string{"--data-dir", dir, "--tenant", "default", "--key-store", filepath.Join(empty, "keys.db")}, 1, "open key store"},
		{"password in flag", nil, []string{"--data-dir", dir, "--tenant", "default", "--key-store", "postgres://u:secret@127.0.0.1/keys"}, 2, "password"},
		{"stray argument", nil, []string{"--data-dir", dir, "--tenant", "default", "extra"}, 2, "unexpected argument"},
	}
	checkRefusals(t, "rotate-tenant", tests, empty)

	code, _, stderr := runCLI(nil, "keys", "rotate-tenant", "-h")
	if code != 0 {
		t.Errorf("-h: got exit %d, want 0", code)
	}
	for _, want := range []string{"--tenant", "finishes the rotation", "no sealed data is re-encrypted"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("help: got %q, want it to contain %q", stderr, want)
		}
	}
	code, out, _ := runCLI(nil, "help")
	if code != 0 || !strings.Contains(out, "lethe keys rotate-tenant --tenant T") {
		t.Errorf("usage: got exit %d %q, want it to list rotate-tenant", code, out)
	}
}
