package api_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
)

func TestSubjectsOverHTTP(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	sup := f.addKey(t, "desk", lethe.RoleSupport)
	dpo := f.addKey(t, "dpo", lethe.RoleDPO)

	resp, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"Ann.Lee@Example.com","phone":"+1 650 253 0000"},"profile":{"name":"Ann Lee","plan":"gold"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: got %d %s", resp.StatusCode, b)
	}
	var s lethe.SubjectView
	json.Unmarshal(b, &s)
	if resp.Header.Get("Location") != "/v1/subjects/"+s.ID {
		t.Errorf("Location: got %q", resp.Header.Get("Location"))
	}

	// Support finds by email and sees masked values, even when asking for
	// the whole value.
	resp, b = f.do(t, "POST", "/v1/subjects/lookup", sup, `{"kind":"email","value":"ann.lee@example.com","masked":false}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"email":"a***@example.com"`) || strings.Contains(string(b), "Ann Lee") {
		t.Fatalf("support lookup: got %d %s", resp.StatusCode, b)
	}
	// The service reads whole values, one field.
	resp, b = f.do(t, "GET", "/v1/subjects/"+s.ID+"?fields=name", svc, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"profile":{"name":"Ann Lee"}`) || strings.Contains(string(b), "gold") {
		t.Fatalf("field read: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "PATCH", "/v1/subjects/"+s.ID, svc, `{"profile":{"plan":null},"identifiers":{"phone":null,"email":"ann@new.example"},"reason":"support ticket 42"}`)
	if resp.StatusCode != 200 || strings.Contains(string(b), "gold") || strings.Contains(string(b), "phone") {
		t.Fatalf("rectify: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/v1/subjects/"+s.ID+"/history", dpo, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "support ticket 42") {
		t.Fatalf("history: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "DELETE", "/v1/subjects/"+s.ID, dpo, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"erased_at"`) {
		t.Fatalf("erase: got %d %s", resp.StatusCode, b)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/subjects/" + s.ID, ""},
		{"GET", "/v1/subjects/" + s.ID + "/history", ""},
		{"PATCH", "/v1/subjects/" + s.ID, `{"reason":"x","profile":{"a":1}}`},
	} {
		resp, b := f.do(t, c.method, c.path, dpo, c.body)
		if resp.StatusCode != 410 {
			t.Errorf("%s %s after erasure: got %d, want 410", c.method, c.path, resp.StatusCode)
		}
		if p := problem(t, resp, b); p.Code != lethe.EGONE {
			t.Errorf("code: got %q, want %q", p.Code, lethe.EGONE)
		}
	}
	if resp, _ := f.do(t, "POST", "/v1/subjects/lookup", svc, `{"kind":"email","value":"ann@new.example"}`); resp.StatusCode != 404 {
		t.Errorf("lookup after erasure: got %d, want 404", resp.StatusCode)
	}

	// The log holds no value that went through the vault.
	for _, v := range []string{"ann.lee", "Ann Lee", "ann@new", "6502530000", "gold\"", "support ticket"} {
		if strings.Contains(strings.ToLower(f.logs.String()), strings.ToLower(v)) {
			t.Errorf("the debug log holds a personal value (%d bytes of log)", f.logs.Len())
		}
	}
	ev := bytes.ToLower(audittest.Files(t, f.auditDir))
	for _, v := range []string{"ann.lee", "ann lee", "ann@new", "gold", "6502530000"} {
		if bytes.Contains(ev, []byte(v)) {
			t.Errorf("the audit log's files hold a personal value (%d bytes searched)", len(ev))
		}
	}
}

func TestSubjectBadInput(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		want                     int
		detail                   string
	}{
		{"malformed id", "GET", "/v1/subjects/jane@example.com", "", nil, 400, "malformed subject ID"},
		{"unknown id", "GET", "/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa", "", nil, 404, "not found"},
		{"bad masked", "GET", "/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa?masked=yes", "", nil, 400, "masked"},
		{"bad email", "POST", "/v1/subjects", `{"identifiers":{"email":"secret-not-an-email"}}`, nil, 400, "email"},
		{"no identifiers", "POST", "/v1/subjects", `{"profile":{"a":1}}`, nil, 400, "identifier"},
		{"profile array", "POST", "/v1/subjects", `{"identifiers":{"login":"x"},"profile":[1]}`, nil, 400, "JSON object"},
		{"identifiers wrong type", "POST", "/v1/subjects", `{"identifiers":["a"]}`, nil, 400, "identifiers"},
		{"bad tenant", "POST", "/v1/subjects", `{"identifiers":{"login":"x"}}`, []string{"Lethe-Tenant", "Big Corp"}, 400, "tenant"},
		{"bad purpose", "POST", "/v1/subjects", `{"identifiers":{"login":"x"}}`, []string{"Lethe-Purpose", "no spaces allowed"}, 400, "Lethe-Purpose"},
		{"field name holding a value", "POST", "/v1/subjects", `{"identifiers":{"login":"x"},"profile":{"jane@example.com":true}}`, nil, 400, "field name"},
		{"lookup bad kind", "POST", "/v1/subjects/lookup", `{"kind":"E-Mail","value":"x"}`, nil, 400, "kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.do(t, tt.method, tt.path, svc, tt.body, tt.hdr...)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			p := problem(t, resp, b)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail: got %q, want it to contain %q", p.Detail, tt.detail)
			}
			if strings.Contains(p.Detail, "secret-not") || strings.Contains(p.Detail, "jane@") {
				t.Errorf("detail echoes the submitted value")
			}
		})
	}
	if n := f.audit.Size(); n != 0 {
		t.Errorf("bad input was audited as done: %d events", n)
	}
}

func TestTenantHeaderIsolates(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	resp, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"t@example.com"}}`, "Lethe-Tenant", "acme")
	if resp.StatusCode != 201 {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
	var s lethe.SubjectView
	json.Unmarshal(b, &s)
	if resp, _ := f.do(t, "GET", "/v1/subjects/"+s.ID, svc, "", "Lethe-Tenant", "globex"); resp.StatusCode != 404 {
		t.Errorf("another tenant reading: got %d, want 404", resp.StatusCode)
	}
	if resp, _ := f.do(t, "GET", "/v1/subjects/"+s.ID, svc, ""); resp.StatusCode != 404 {
		t.Errorf("the default tenant reading: got %d, want 404", resp.StatusCode)
	}
	if resp, _ := f.do(t, "GET", "/v1/subjects/"+s.ID, svc, "", "Lethe-Tenant", "acme"); resp.StatusCode != 200 {
		t.Errorf("its own tenant reading: got %d, want 200", resp.StatusCode)
	}
}

func TestTenantBoundKeys(t *testing.T) {
	f := newFixture(t, api.Options{})
	resp, b := f.do(t, "POST", "/v1/keys", f.admin, `{"name":"acme shop","role":"service","tenant":"acme"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create bound key: got %d %s", resp.StatusCode, b)
	}
	var k struct{ Secret, Tenant string }
	json.Unmarshal(b, &k)
	if k.Tenant != "acme" {
		t.Fatalf("tenant: got %q", k.Tenant)
	}
	if resp, _ := f.do(t, "POST", "/v1/keys", f.admin, `{"name":"x","role":"admin","tenant":"acme"}`); resp.StatusCode != 400 {
		t.Errorf("bound admin key: got %d, want 400", resp.StatusCode)
	}
	// Without a header the bound key acts in its tenant.
	resp, b = f.do(t, "POST", "/v1/subjects", k.Secret, `{"identifiers":{"email":"b@example.com"}}`)
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"tenant":"acme"`) {
		t.Fatalf("create with a bound key: got %d %s", resp.StatusCode, b)
	}
	if resp, _ := f.do(t, "POST", "/v1/subjects", k.Secret, `{"identifiers":{"email":"c@example.com"}}`, "Lethe-Tenant", "globex"); resp.StatusCode != 403 {
		t.Errorf("bound key asking for another tenant: got %d, want 403", resp.StatusCode)
	}
	if resp, _ := f.do(t, "POST", "/v1/subjects/lookup", k.Secret, `{"kind":"email","value":"b@example.com"}`, "Lethe-Tenant", "acme"); resp.StatusCode != 200 {
		t.Errorf("bound key naming its own tenant: got %d, want 200", resp.StatusCode)
	}
}

func TestEraseTenantOverHTTP(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	var ids []string
	for _, e := range []string{"a@example.com", "b@example.com"} {
		_, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"`+e+`"}}`, "Lethe-Tenant", "acme")
		var s lethe.SubjectView
		json.Unmarshal(b, &s)
		ids = append(ids, s.ID)
	}
	_, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"a@example.com"}}`, "Lethe-Tenant", "globex")
	var other lethe.SubjectView
	json.Unmarshal(b, &other)

	if resp, b := f.do(t, "DELETE", "/v1/tenants/acme", f.admin, `{"confirm":"acm"}`); resp.StatusCode != 400 {
		t.Fatalf("wrong confirmation: got %d %s", resp.StatusCode, b)
	}
	resp, b := f.do(t, "DELETE", "/v1/tenants/acme", f.admin, `{"confirm":"acme"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"tenant":"acme"`) {
		t.Fatalf("erase tenant: got %d %s", resp.StatusCode, b)
	}
	for _, id := range ids {
		if resp, _ := f.do(t, "GET", "/v1/subjects/"+id, svc, "", "Lethe-Tenant", "acme"); resp.StatusCode != 410 {
			t.Errorf("subject of an erased tenant: got %d, want 410", resp.StatusCode)
		}
	}
	if resp, _ := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"new@example.com"}}`, "Lethe-Tenant", "acme"); resp.StatusCode != 410 {
		t.Errorf("new subject in an erased tenant: got %d, want 410", resp.StatusCode)
	}
	if resp, _ := f.do(t, "GET", "/v1/subjects/"+other.ID, svc, "", "Lethe-Tenant", "globex"); resp.StatusCode != 200 {
		t.Errorf("another tenant's subject: got %d, want 200", resp.StatusCode)
	}
	if resp, _ := f.do(t, "DELETE", "/v1/tenants/acme", f.admin, `{"confirm":"acme"}`); resp.StatusCode != 200 {
		t.Errorf("erasing again: got %d, want 200", resp.StatusCode)
	}
	if resp, _ := f.do(t, "DELETE", "/v1/tenants/never", f.admin, `{"confirm":"never"}`); resp.StatusCode != 404 {
		t.Errorf("erasing an unknown tenant: got %d, want 404", resp.StatusCode)
	}
}
