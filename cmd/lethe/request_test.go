package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
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
		{"request", "approve", r.ID, "--key-file", keyFile},
		{"request", "extend", r.ID, "--key-file", keyFile, "--by", "30d", "--reason", "the request spans many systems"},
		{"request", "show", r.ID, "--key-file", keyFile},
		{"request", "cancel", r.ID, "--key-file", keyFile, "--reason", "the person withdrew it"},
	}
	wants := []string{r.ID + "  erasure  awaiting_approval", "approved", "extended: the request spans many systems", "approved: by", "cancelled"}
	for i, args := range steps {
		code, out, errOut := in.run(t, args...)
		if code != 0 || !strings.Contains(out, wants[i]) {
			t.Errorf("%s: exit %d, got %q, want %q; %s", args[1], code, out, wants[i], errOut)
		}
	}
	if code, _, errOut := in.run(t, "request", "extend", r.ID, "--key-file", keyFile, "--by", "30d"); code == 0 || !strings.Contains(errOut, "cancelled") {
		t.Errorf("extend a cancelled request: exit %d, %s", code, errOut)
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
	code, out, _ = in.run(t, "request", "show", self.ID, "--key-file", keyFile)
	if code != 0 || !strings.Contains(out, "access request, approved") || !strings.Contains(out, "self") {
		t.Errorf("the person's request: %s", out)
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
