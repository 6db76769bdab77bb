package api_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"golang.org/x/mod/sumdb/note"
)

func TestAuditEvents(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	dpo := f.addKey(t, "dpo", lethe.RoleDPO)
	auditor := f.addKey(t, "auditor", lethe.RoleAuditor)
	resp, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"audit.me@example.com"},"profile":{"name":"Audit Me"}}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: got %d %s", resp.StatusCode, b)
	}
	var s lethe.SubjectView
	json.Unmarshal(b, &s)
	for range 3 {
		if resp, _ := f.do(t, "GET", "/v1/subjects/"+s.ID, svc, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("read: got %d", resp.StatusCode)
		}
	}
	resp, b = f.do(t, "GET", "/v1/audit?subject="+s.ID, auditor, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("audit: got %d %s", resp.StatusCode, b)
	}
	var bundle lethe.AuditBundle
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range bundle.Events {
		var ev lethe.AuditEvent
		json.Unmarshal(e.Event, &ev)
		if ev.SubjectID != s.ID {
			t.Errorf("event %d is of subject %s, want %s", e.Index, ev.SubjectID, s.ID)
		}
		actions = append(actions, ev.Action)
	}
	want := []string{"subject.create", "subject.read", "subject.read", "subject.read", "audit.read"}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Errorf("actions %v, want %v", actions, want)
	}
	// The bundle proves itself offline with the log's verifier key.
	seed := sha256.Sum256([]byte("audittest signing seed"))
	_, vkey, _ := audit.NewSigner(audittest.Origin, seed[:])
	v, _ := note.NewVerifier(vkey)
	if _, err := audit.VerifyBundle(&bundle, audittest.Origin, v); err != nil {
		t.Fatalf("the API's bundle does not verify: %v", err)
	}

	// Paging.
	resp, b = f.do(t, "GET", fmt.Sprintf("/v1/audit?subject=%s&limit=2", s.ID), dpo, "")
	var page lethe.AuditBundle
	json.Unmarshal(b, &page)
	if resp.StatusCode != http.StatusOK || len(page.Events) != 2 || page.Next == nil {
		t.Fatalf("page: got %d, %d events, next %v", resp.StatusCode, len(page.Events), page.Next)
	}
	resp, b = f.do(t, "GET", fmt.Sprintf("/v1/audit?subject=%s&after=%d&limit=1000", s.ID, *page.Next), dpo, "")
	page = lethe.AuditBundle{}
	json.Unmarshal(b, &page)
	if resp.StatusCode != http.StatusOK || len(page.Events) != 5 || page.Next != nil {
		t.Fatalf("second page: got %d, %d events, want 5 (2 reads and 3 audit.read)", resp.StatusCode, len(page.Events))
	}

	for _, q := range []string{"", "?subject=", "?subject=bob", "?subject=" + s.ID + "&limit=0", "?subject=" + s.ID + "&limit=1001", "?subject=" + s.ID + "&after=-1"} {
		n := f.audit.Size()
		resp, b := f.do(t, "GET", "/v1/audit"+q, dpo, "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /v1/audit%s: got %d %s, want 400", q, resp.StatusCode, b)
		}
		if f.audit.Size() != n {
			t.Errorf("GET /v1/audit%s: a refused query was recorded", q)
		}
	}
	if resp, _ := f.do(t, "GET", "/v1/audit?subject="+s.ID, svc, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("service key: got %d, want 403", resp.StatusCode)
	}
}
