package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/client"
)

func TestAuditCommands(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	if !strings.Contains(in.stdout.String(), "verifier key") {
		t.Errorf("first start does not print the audit verifier key:\n%s", in.stdout.String())
	}
	admin := in.client(t, in.adminKey(t))
	svc, err := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	dpo, err := admin.CreateKey(ctx, client.KeySpec{Name: "dpo", Role: "dpo"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := in.client(t, svc.Secret).CreateSubject(ctx, map[string]string{"email": "cli.audit@example.com"}, map[string]any{"name": "Cli Audit"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.client(t, svc.Secret).ReadSubject(ctx, s.ID, client.ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := in.client(t, dpo.Secret).AuditEvents(ctx, s.ID, 0, 0)
	if err != nil || len(b.Events) != 3 {
		t.Fatalf("GET /v1/audit: %v, %d events, want create, read and this query", err, len(b.Events))
	}
	vkey, err := os.ReadFile(filepath.Join(dir, "audit", verifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "auditor.key") // the auditor's own copy
	os.WriteFile(keyFile, vkey, 0o600)

	// verify works beside the running server.
	code, out, stderr := runCLI(nil, "audit", "verify", "--data-dir", dir, "--key", keyFile)
	if code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify beside the server: exit %d, %s %s", code, out, stderr)
	}
	in.shutdown(t)

	code, out, stderr = runCLI(nil, "audit", "verify", "--data-dir", dir, "--key", keyFile, "--json")
	var r struct {
		Entries  uint64
		Problems []any
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || len(r.Problems) != 0 || r.Entries != 3 {
		t.Fatalf("verify --json: exit %d, %s %s", code, out, stderr)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	if code, _, stderr := runCLI(nil, "audit", "export", "--data-dir", dir, "--subject", s.ID, "--out", bundle); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	code, out, stderr = runCLI(nil, "audit", "verify-proof", "--key", strings.TrimSpace(string(vkey)), bundle)
	if code != 0 || !strings.Contains(out, "OK: all 3 events") {
		t.Fatalf("verify-proof: exit %d, %s %s", code, out, stderr)
	}
	if code, _, _ := runCLI(nil, "audit", "verify-proof", bundle); code != 2 {
		t.Errorf("verify-proof without --key: exit %d, want 2", code)
	}
	// A bundle whose event was changed fails.
	raw, _ := os.ReadFile(bundle)
	os.WriteFile(bundle, bytes.Replace(raw, []byte("subject.read"), []byte("subject.list"), 1), 0o600)
	if code, out, _ := runCLI(nil, "audit", "verify-proof", "--key", keyFile, bundle); code != 1 || !strings.Contains(out, "FAILED") {
		t.Errorf("verify-proof of a changed bundle: exit %d, %s", code, out)
	}

	// One changed byte in the log: verify fails and names the entry.
	seg := filepath.Join(dir, "audit", "entries", "0000000000000000.log")
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	second := 8 + int(binary.BigEndian.Uint32(data)) // the offset of entry 1
	i := bytes.Index(data[second:], []byte(`"outcome":"ok"`)) + second
	data[i+len(`"outcome":"`)] = 'O'
	os.WriteFile(seg, data, 0o600)
	code, out, _ = runCLI(nil, "audit", "verify", "--data-dir", dir, "--key", keyFile)
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "at index 1: entry 1 is damaged") {
		t.Errorf("verify of a changed log: exit %d, %s", code, out)
	}
}

func TestAuditLogLossRefusedThenStartedAnew(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	in := serve(t, dir, nil)
	admin := in.client(t, in.adminKey(t))
	svc, err := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.client(t, svc.Secret).CreateSubject(ctx, map[string]string{"email": "lost@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	in.shutdown(t)
	oldKey, _ := os.ReadFile(filepath.Join(dir, "audit", verifierKeyFile))

	// The whole log is gone: the key store's checkpoint says there was one.
	if err := os.RemoveAll(filepath.Join(dir, "audit")); err != nil {
		t.Fatal(err)
	}
	m, _, errOut := testMain(nil)
	if code := m.Run(ctx, []string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0"}); code != 1 || !strings.Contains(errOut.String(), "--audit-start-new-log") || !strings.Contains(errOut.String(), "key store's checkpoint") {
		t.Fatalf("serve on a lost audit log: exit %d, %s", code, errOut.String())
	}
	// Explicitly starting anew keeps the remains aside and names the new
	// log differently.
	again := serve(t, dir, nil, "--audit-start-new-log")
	if !strings.Contains(again.stdout.String(), "verifier key") {
		t.Errorf("the new log's verifier key was not printed:\n%s", again.stdout.String())
	}
	again.shutdown(t)
	newKey, _ := os.ReadFile(filepath.Join(dir, "audit", verifierKeyFile))
	if len(newKey) == 0 || string(newKey) == string(oldKey) {
		t.Errorf("the new log has the old name: %q", newKey)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "audit.abandoned-*")); len(matches) != 1 {
		t.Errorf("abandoned logs kept: %v, want one", matches)
	}
	if code, out, errOut := runCLI(nil, "audit", "verify", "--data-dir", dir); code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Errorf("verify of the new log: exit %d %s %s", code, out, errOut)
	}
}
