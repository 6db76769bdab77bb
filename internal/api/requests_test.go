package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
)

// TestSelfRequestsRevealNothing: a person's own request is answered the
// same, status and body but for its ID and due date, whether or not Lethe
// holds them; verifying it tells them nothing either; a wrong code is
// refused without saying more.
func TestSelfRequestsRevealNothing(t *testing.T) {
	f := newFixture(t, api.Options{})
	ctx := context.Background()
	if _, err := f.vault.CreateSubject(ctx, lethe.Actor{KeyID: "key_fixture", Role: lethe.RoleService}, lethe.NewSubject{Identifiers: map[string]string{"email": "held@example.com"}}); err != nil {
		t.Fatal(err)
	}
	norm := func(b []byte) string {
		var v map[string]any
		json.Unmarshal(b, &v)
		delete(v, "id")
		delete(v, "due_at")
		out, _ := json.Marshal(v)
		return string(out)
	}
	var ids []string
	var bodies []string
	for _, addr := range []string{"held@example.com", "nobody@example.com"} {
		resp, b := f.do(t, "POST", "/v1/self/requests", "", fmt.Sprintf(`{"type":"erasure","contact":%q}`, addr))
		if resp.StatusCode != 202 {
			t.Fatalf("%s: got %d %s", addr, resp.StatusCode, b)
		}
		if strings.Contains(string(b), "sub_") {
			t.Errorf("the answer names a subject: %s", b)
		}
		var v struct{ ID string }
		json.Unmarshal(b, &v)
		ids = append(ids, v.ID)
		bodies = append(bodies, norm(b))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("answers differ:\n%s\n%s", bodies[0], bodies[1])
	}
	resp, b := f.do(t, "POST", "/v1/self/requests/"+ids[0]+"/verify", "", `{"code":"12345678"}`)
	if resp.StatusCode != 403 {
		t.Errorf("wrong code: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "POST", "/v1/self/requests/"+ids[0]+"/verify", "", `{"code":"abc"}`)
	if resp.StatusCode != 403 {
		t.Errorf("malformed code: got %d %s", resp.StatusCode, b)
	}
	for _, id := range []string{ids[0], "req_aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		resp, b = f.do(t, "POST", "/v1/self/requests/"+id+"/code", "", `{}`)
		if resp.StatusCode != 202 {
			t.Errorf("new code for %s: got %d %s", id, resp.StatusCode, b)
		}
	}
	// Staff see both, the known one with its subject.
	dpo := f.addKey(t, "dpo", lethe.RoleDPO)
	resp, b = f.do(t, "GET", "/v1/requests?state=received", dpo, "")
	var list struct{ Requests []lethe.Request }
	json.Unmarshal(b, &list)
	if resp.StatusCode != 200 || len(list.Requests) != 2 {
		t.Fatalf("list: got %d, %d requests", resp.StatusCode, len(list.Requests))
	}
	for _, addr := range []string{"held@example.com", "nobody@example.com"} {
		if strings.Contains(string(b), addr) {
			t.Error("the list shows an address")
		}
	}
}

// TestSelfRequestRateLimit: a client address gets SelfRateLimit
// self-service calls a minute.
func TestSelfRequestRateLimit(t *testing.T) {
	f := newFixture(t, api.Options{SelfRateLimit: 3})
	codes := []int{}
	for i := range 4 {
		resp, _ := f.do(t, "POST", "/v1/self/requests", "", fmt.Sprintf(`{"type":"access","contact":"p%d@example.com"}`, i))
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[202 202 202 429]" {
		t.Errorf("got %v, want three accepted, then 429", codes)
	}
}

// TestSelfRequestContactLimit: one contact address is named in at most
// SelfContactLimit self-service requests an hour, from any client, so that
// nobody floods a mailbox with codes; the refusal reads like any other
// rate limit's, and other addresses are not held back.
func TestSelfRequestContactLimit(t *testing.T) {
	f := newFixture(t, api.Options{SelfRateLimit: 1e6, SelfContactLimit: 2})
	// Invalid asks naming the address send nothing and are refused with
	// 400, however many: they do not use up its budget.
	for i, body := range []string{
		`{"type":"delete","contact":"target@example.com"}`,
		`{"type":"","contact":"target@example.com"}`,
		`{"type":"access","contact":"target@example"}`,
		`{"type":"access","contact":"Target <target@example.com>"}`,
		`{"type":"access","contact":"target@@example.com"}`,
	} {
		for range 3 {
			resp, b := f.do(t, "POST", "/v1/self/requests", "", body)
			if resp.StatusCode != 400 || strings.Contains(string(b), "target@") {
				t.Errorf("invalid ask %d: got %d (the address echoed: %v), want 400 without the address", i, resp.StatusCode, strings.Contains(string(b), "target@"))
			}
		}
	}
	var codes []int
	for _, typ := range []string{"access", "erasure", "portability"} {
		resp, b := f.do(t, "POST", "/v1/self/requests", "", fmt.Sprintf(`{"type":%q,"contact":"target@example.com"}`, typ))
		codes = append(codes, resp.StatusCode)
		if strings.Contains(string(b), "target@example.com") || (resp.StatusCode == 429 && !strings.Contains(string(b), "too many requests; retry after")) {
			t.Errorf("answer %d: %s", resp.StatusCode, b)
		}
	}
	if resp, _ := f.do(t, "POST", "/v1/self/requests", "", `{"type":"access","contact":" Target@Example.com "}`); resp.StatusCode != 429 {
		t.Errorf("the same address written otherwise: %d, want 429", resp.StatusCode)
	}
	if resp, _ := f.do(t, "POST", "/v1/self/requests", "", `{"type":"access","contact":"other@example.com"}`); resp.StatusCode != 202 {
		t.Errorf("another address: %d, want 202", resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[202 202 429]" {
		t.Errorf("got %v, want two accepted, then 429", codes)
	}
}

// TestSelfDownloadEncrypted: a person who gave a passphrase downloads an
// archive encrypted to it, named as such; without one, a zip.
func TestSelfDownloadEncrypted(t *testing.T) {
	f := newFixture(t, api.Options{SelfRateLimit: 1e6})
	for _, c := range []struct {
		addr, body, name, prefix string
	}{
		{"crypt@example.com", `"passphrase":"a long enough passphrase",`, `filename="personal-data.zip.age"`, request.AgeHeader},
		{"plain@example.com", ``, `filename="personal-data.zip"`, "PK"},
	} {
		resp, b := f.do(t, "POST", "/v1/self/requests", "", fmt.Sprintf(`{%s"type":"access","contact":%q}`, c.body, c.addr))
		if resp.StatusCode != 202 {
			t.Fatalf("create: %d %s", resp.StatusCode, b)
		}
		var created struct{ ID string }
		json.Unmarshal(b, &created)
		code := ""
		names, _ := f.outbox.List()
		for _, n := range names {
			m, _ := mail.ReadMessage(n)
			if cm := selfCodeRE.FindStringSubmatch(m.Text); cm != nil && m.To == c.addr {
				code = cm[1]
			}
		}
		if resp, b := f.do(t, "POST", "/v1/self/requests/"+created.ID+"/verify", "", fmt.Sprintf(`{"code":%q}`, code)); resp.StatusCode != 200 {
			t.Fatalf("verify: %d %s", resp.StatusCode, b)
		}
		link := ""
		for deadline := time.Now().Add(30 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			names, _ := f.outbox.List()
			for _, n := range names {
				m, _ := mail.ReadMessage(n)
				if l := linkRE.FindStringSubmatch(m.Text); l != nil && m.To == c.addr {
					link = l[1]
				}
			}
		}
		if link == "" {
			t.Fatalf("no link mailed for request %s", created.ID)
		}
		resp, b = f.do(t, "GET", "/v1/self/downloads/"+link, "", "")
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), c.name) || !strings.HasPrefix(string(b), c.prefix) {
			t.Errorf("request %s: %d, %q, starts %q", created.ID, resp.StatusCode, resp.Header.Get("Content-Disposition"), b[:min(len(b), 8)])
		}
	}
	if resp, _ := f.do(t, "POST", "/v1/self/requests", "", `{"type":"access","contact":"short@example.com","passphrase":"short"}`); resp.StatusCode != 400 {
		t.Errorf("a short passphrase: %d, want 400", resp.StatusCode)
	}
}
