package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
)

// TestForgottenCheck asks GET /v1/forgotten/{ref} about subjects and tokens,
// live, erased, in an erased tenant, unknown and malformed, as a recipient
// and as roles that may not ask, on the real stores.
func TestForgottenCheck(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)

	// The personal values the subjects hold: no answer may contain one.
	values := []string{"ann.lee@example.com", "Ann Lee", "4111 1111 1111 1111", "bo.ek@example.com", "Bo Ek", "cy@example.com"}
	subject := func(email, name, tenant string) string {
		t.Helper()
		resp, b := f.do(t, "POST", "/v1/subjects", svc, fmt.Sprintf(`{"identifiers":{"email":%q},"profile":{"name":%q}}`, email, name), "Lethe-Tenant", tenant)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create a subject in tenant %s: got %d", tenant, resp.StatusCode)
		}
		var v lethe.SubjectView
		json.Unmarshal(b, &v)
		return v.ID
	}
	// tokens returns a random, a deterministic and a reference token of
	// the subject.
	tokens := func(id, tenant string) []string {
		t.Helper()
		resp, b := f.do(t, "POST", "/v1/tokens", svc, fmt.Sprintf(`{"subject_id":%q,"tokens":[{"field":"card","value":"4111 1111 1111 1111"},{"field":"email","value":"x@example.com","deterministic":true},{"field":"name"}]}`, id), "Lethe-Tenant", tenant)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("tokenize subject %s: got %d", id, resp.StatusCode)
		}
		var tr struct{ Tokens []lethe.Token }
		json.Unmarshal(b, &tr)
		return []string{tr.Tokens[0].Token, tr.Tokens[1].Token, tr.Tokens[2].Token}
	}

	live := subject("ann.lee@example.com", "Ann Lee", "")
	liveToks := tokens(live, "")
	erased := subject("bo.ek@example.com", "Bo Ek", "")
	erasedToks := tokens(erased, "")
	resp, b := f.do(t, "DELETE", "/v1/subjects/"+erased, svc, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("erase subject %s: got %d", erased, resp.StatusCode)
	}
	var erasure struct {
		ErasedAt time.Time `json:"erased_at"`
	}
	json.Unmarshal(b, &erasure)
	acme := subject("cy@example.com", "Cy", "acme")
	acmeToks := tokens(acme, "acme")
	goneCo := subject("cy@example.com", "Cy", "gone-co")
	goneCoToks := tokens(goneCo, "gone-co")
	if resp, _ := f.do(t, "DELETE", "/v1/tenants/gone-co", f.admin, `{"confirm":"gone-co"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("erase tenant gone-co: got %d", resp.StatusCode)
	}

	// The recipient's key is made through the key routes, as an operator
	// would, and bound to no tenant so that it can ask in each.
	resp, b = f.do(t, "POST", "/v1/keys", f.admin, `{"name":"mailer (processor)","role":"recipient"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create a recipient key: got %d", resp.StatusCode)
	}
	var made struct {
		ID     string `json:"id"`
		Role   string `json:"role"`
		Secret string `json:"secret"`
	}
	json.Unmarshal(b, &made)
	if made.Role != "recipient" {
		t.Fatalf("role: got %q, want recipient", made.Role)
	}
	recipient := made.Secret
	resp, b = f.do(t, "POST", "/v1/keys", f.admin, `{"name":"acme's mailer","role":"recipient","tenant":"acme"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create a tenant-bound recipient key: got %d", resp.StatusCode)
	}
	json.Unmarshal(b, &made)
	acmeRecipient := made.Secret
	dpo := f.addKey(t, "dpo", lethe.RoleDPO)
	support := f.addKey(t, "support", lethe.RoleSupport)
	auditor := f.addKey(t, "auditor", lethe.RoleAuditor)

	const unknownToken = "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name, ref, key, tenant string
		want                   int
		erasedAt               time.Time // for a 410 of an erased subject: the time of its erasure
	}{
		{"live subject", live, recipient, "", http.StatusOK, time.Time{}},
		{"live random token", liveToks[0], recipient, "", http.StatusOK, time.Time{}},
		{"live deterministic token", liveToks[1], recipient, "", http.StatusOK, time.Time{}},
		{"live reference token", liveToks[2], recipient, "", http.StatusOK, time.Time{}},
		{"erased subject", erased, recipient, "", http.StatusGone, erasure.ErasedAt},
		{"erased subject's random token", erasedToks[0], recipient, "", http.StatusGone, erasure.ErasedAt},
		{"erased subject's deterministic token", erasedToks[1], recipient, "", http.StatusGone, erasure.ErasedAt},
		{"erased subject's reference token", erasedToks[2], recipient, "", http.StatusGone, erasure.ErasedAt},
		{"subject in an erased tenant", goneCo, recipient, "gone-co", http.StatusGone, time.Time{}},
		{"token in an erased tenant", goneCoToks[0], recipient, "gone-co", http.StatusGone, time.Time{}},
		{"another tenant's subject", acme, recipient, "", http.StatusNotFound, time.Time{}},
		{"another tenant's token", acmeToks[0], recipient, "", http.StatusNotFound, time.Time{}},
		{"subject in its tenant", acme, recipient, "acme", http.StatusOK, time.Time{}},
		{"token in its tenant", acmeToks[1], recipient, "acme", http.StatusOK, time.Time{}},
		{"tenant-bound key", acmeToks[0], acmeRecipient, "", http.StatusOK, time.Time{}},
		{"tenant-bound key asking another tenant", live, acmeRecipient, "default", http.StatusForbidden, time.Time{}},
		{"unknown subject", "sub_" + strings.Repeat("a", 26), recipient, "", http.StatusNotFound, time.Time{}},
		{"unknown token", unknownToken, recipient, "", http.StatusNotFound, time.Time{}},
		{"unknown deterministic token", "tokd_" + unknownToken[4:], recipient, "", http.StatusNotFound, time.Time{}},
		{"short subject ID", "sub_abc", recipient, "", http.StatusBadRequest, time.Time{}},
		{"upper-case subject ID", strings.ToUpper(live), recipient, "", http.StatusBadRequest, time.Time{}},
		{"short token", liveToks[0][:30], recipient, "", http.StatusBadRequest, time.Time{}},
		{"token with a foreign character", unknownToken[:20] + "+" + unknownToken[21:], recipient, "", http.StatusBadRequest, time.Time{}},
		{"an email address", "ann.lee@example.com", recipient, "", http.StatusBadRequest, time.Time{}},
		{"bad tenant", live, recipient, "Not A Tenant", http.StatusBadRequest, time.Time{}},
		{"as the service", erasedToks[0], svc, "", http.StatusGone, erasure.ErasedAt},
		{"as the DPO", live, dpo, "", http.StatusOK, time.Time{}},
		{"as support", live, support, "", http.StatusForbidden, time.Time{}},
		{"as the auditor", erased, auditor, "", http.StatusForbidden, time.Time{}},
		{"as the admin", erased, f.admin, "", http.StatusForbidden, time.Time{}},
		{"without a key", erased, "", "", http.StatusUnauthorized, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.tenant != "" {
				hdr = []string{"Lethe-Tenant", tt.tenant}
			}
			resp, b := f.do(t, "GET", "/v1/forgotten/"+tt.ref, tt.key, "", hdr...)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			for _, v := range values {
				if strings.Contains(string(b), v) {
					t.Errorf("the answer holds one of the subjects' values (%d bytes)", len(b))
				}
			}
			// A token's answer does not name its subject: the holder of two
			// tokens must not learn that they stand for one person.
			if strings.HasPrefix(tt.ref, "tok") {
				for _, id := range []string{live, erased, acme, goneCo} {
					if strings.Contains(string(b), id) {
						t.Errorf("the answer about a token names subject %s", id)
					}
				}
			}
			switch tt.want {
			case http.StatusOK:
				var got map[string]any
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				if want := map[string]any{"ref": tt.ref, "forgotten": false}; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("got %v, want %v", got, want)
				}
			case http.StatusGone:
				if p := problem(t, resp, b); p.Code != lethe.EGONE {
					t.Errorf("code: got %q, want %q", p.Code, lethe.EGONE)
				}
				var got struct {
					Ref       string    `json:"ref"`
					Forgotten bool      `json:"forgotten"`
					ErasedAt  time.Time `json:"erased_at"`
				}
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				if got.Ref != tt.ref || !got.Forgotten || got.ErasedAt.IsZero() {
					t.Errorf("got ref match %v, forgotten %v, erased_at %v; want the ref, true and a time", got.Ref == tt.ref, got.Forgotten, got.ErasedAt)
				}
				if !tt.erasedAt.IsZero() && !got.ErasedAt.Equal(tt.erasedAt) {
					t.Errorf("erased_at: got %v, want %v", got.ErasedAt, tt.erasedAt)
				}
			default:
				p := problem(t, resp, b)
				if tt.want == http.StatusBadRequest && strings.Contains(p.Detail, tt.ref) {
					t.Errorf("the detail echoes the malformed ref")
				}
			}
		})
	}
	for _, v := range values {
		if strings.Contains(f.logs.String(), v) {
			t.Errorf("a subject's value reached the log")
		}
	}

	// Each answer about a subject is in its audit trail, under the key
	// that asked; an erased subject's trail shows each recipient told.
	resp, b = f.do(t, "GET", "/v1/audit?subject="+erased, dpo, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("audit: got %d", resp.StatusCode)
	}
	var bundle lethe.AuditBundle
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	var checks []string
	for _, e := range bundle.Events {
		var ev lethe.AuditEvent
		json.Unmarshal(e.Event, &ev)
		if ev.Action == "forgotten.check" {
			checks = append(checks, fmt.Sprintf("%s %v", ev.Role, ev.Fields))
		}
	}
	want := []string{
		"recipient [by:subject_id answer:forgotten]",
		"recipient [by:token answer:forgotten]",
		"recipient [by:token answer:forgotten]",
		"recipient [by:token answer:forgotten]",
		"service [by:token answer:forgotten]",
	}
	if fmt.Sprint(checks) != fmt.Sprint(want) {
		t.Errorf("forgotten.check events of subject %s: got %v, want %v", erased, checks, want)
	}
}
