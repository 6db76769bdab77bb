package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
)

func TestConsentOverHTTP(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	dpo := f.addKey(t, "dpo", lethe.RoleDPO)
	sup := f.addKey(t, "desk", lethe.RoleSupport)
	resp, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"consent.me@example.com"}}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: got %d %s", resp.StatusCode, b)
	}
	var s lethe.SubjectView
	json.Unmarshal(b, &s)
	check := func(purpose string, min uint64) lethe.ConsentDecision {
		t.Helper()
		resp, b := f.do(t, "GET", fmt.Sprintf("/v1/consent/check?subject=%s&purpose=%s&min_revision=%d", s.ID, purpose, min), svc, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("check: got %d %s", resp.StatusCode, b)
		}
		var d lethe.ConsentDecision
		json.Unmarshal(b, &d)
		return d
	}
	if d := check("newsletter", 0); d.Allowed || d.Reason != lethe.DecisionNoConsent {
		t.Errorf("before consent: %+v", d)
	}
	resp, b = f.do(t, "POST", "/v1/consent", svc, fmt.Sprintf(`{"records":[{"subject_id":%q,"purpose":"newsletter","kind":"grant","channel":"web_form","ip":"198.51.100.4","user_agent":"Secret Agent 1.0"}]}`, s.ID))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("grant: got %d %s", resp.StatusCode, b)
	}
	if strings.Contains(string(b), "198.51.100.4") || strings.Contains(string(b), "Secret Agent") {
		t.Error("the answer echoes the raw IP address or user agent")
	}
	var rec struct{ Events []lethe.ConsentEvent }
	json.Unmarshal(b, &rec)
	if len(rec.Events) != 1 || rec.Events[0].Revision == 0 || rec.Events[0].PolicyVersion != "2026-02" {
		t.Fatalf("recorded: %+v", rec.Events)
	}
	if d := check("newsletter", rec.Events[0].Revision); !d.Allowed || d.Reason != lethe.DecisionConsent || d.Event != rec.Events[0].Revision {
		t.Errorf("after consent: %+v", d)
	}
	resp, b = f.do(t, "POST", "/v1/consent/check", svc, fmt.Sprintf(`{"purpose":"newsletter","subjects":[%q,"sub_dddddddddddddddddddddddddd"]}`, s.ID))
	var batch lethe.BatchDecision
	json.Unmarshal(b, &batch)
	if resp.StatusCode != http.StatusOK || len(batch.Allowed) != 1 || len(batch.Denied) != 1 || batch.Denied[0].Reason != lethe.DecisionUnknownSubject {
		t.Errorf("batch: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/v1/subjects/"+s.ID+"/consent", dpo, "")
	var hist struct{ Events []lethe.ConsentEvent }
	json.Unmarshal(b, &hist)
	if resp.StatusCode != http.StatusOK || len(hist.Events) != 1 || len(hist.Events[0].IPHMAC) != 64 {
		t.Errorf("history: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/v1/purposes", sup, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"legal_basis":"legitimate_interests"`) {
		t.Errorf("purposes: got %d %s", resp.StatusCode, b)
	}

	// Bad input: 400, and the ledger does not move.
	before := check("billing", 0).Revision
	for _, body := range []string{
		`{"records":[]}`,
		fmt.Sprintf(`{"records":[{"subject_id":%q,"purpose":"billing","kind":"grant"}]}`, s.ID),
		fmt.Sprintf(`{"records":[{"subject_id":%q,"kind":"restrict","reason":"because I say so"}]}`, s.ID),
		`{"records":[{"subject_id":"bob","purpose":"newsletter","kind":"grant"}]}`,
		fmt.Sprintf(`{"records":[{"subject_id":%q,"purpose":"newsletter","kind":"grant","surprise":1}]}`, s.ID),
	} {
		if resp, b := f.do(t, "POST", "/v1/consent", svc, body); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /v1/consent %s: got %d %s, want 400", body, resp.StatusCode, b)
		}
	}
	for _, q := range []string{"?purpose=billing", "?subject=" + s.ID, "?subject=" + s.ID + "&purpose=Bad!", "?subject=" + s.ID + "&purpose=billing&min_revision=x"} {
		if resp, _ := f.do(t, "GET", "/v1/consent/check"+q, svc, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /v1/consent/check%s: got %d, want 400", q, resp.StatusCode)
		}
	}
	if after := check("billing", 0).Revision; after != before {
		t.Errorf("refused records moved the ledger from %d to %d", before, after)
	}

	// Detokenising for the newsletter follows the consent; a withdrawal
	// stops it at once.
	resp, b = f.do(t, "POST", "/v1/tokens", svc, fmt.Sprintf(`{"subject_id":%q,"tokens":[{"field":"email_copy","value":"consent.me@example.com"}]}`, s.ID))
	var toks struct{ Tokens []lethe.Token }
	json.Unmarshal(b, &toks)
	if resp.StatusCode != http.StatusCreated || len(toks.Tokens) != 1 {
		t.Fatalf("tokenize: got %d %s", resp.StatusCode, b)
	}
	detok := func() int {
		resp, _ := f.do(t, "POST", "/v1/detokenize", svc, fmt.Sprintf(`{"purpose":"newsletter","tokens":[%q]}`, toks.Tokens[0].Token))
		return resp.StatusCode
	}
	if code := detok(); code != http.StatusOK {
		t.Errorf("detokenize with consent: got %d", code)
	}
	f.do(t, "POST", "/v1/consent", svc, fmt.Sprintf(`{"records":[{"subject_id":%q,"purpose":"newsletter","kind":"withdraw"}]}`, s.ID))
	if code := detok(); code != http.StatusForbidden {
		t.Errorf("detokenize after withdrawal: got %d, want 403", code)
	}
	// Erasing the tenant denies every check.
	resp, b = f.do(t, "DELETE", "/v1/tenants/default", dpo, `{"confirm":"default"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("erase tenant: got %d %s", resp.StatusCode, b)
	}
	if d := check("billing", 0); d.Allowed || d.Reason != lethe.DecisionErased {
		t.Errorf("after the tenant's erasure: %+v", d)
	}
}

func TestConsentImport(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	var ids []string
	for i := range 3 {
		resp, b := f.do(t, "POST", "/v1/subjects", svc, fmt.Sprintf(`{"identifiers":{"email":"import%d@example.com"}}`, i))
		var s lethe.SubjectView
		json.Unmarshal(b, &s)
		if resp.StatusCode != http.StatusCreated {
			t.Fatal(string(b))
		}
		ids = append(ids, s.ID)
	}
	csv := "subject_id,purpose,kind,at,policy_version,channel,ip\n" +
		ids[0] + ",newsletter,grant,2025-10-01T09:00:00Z,2025-09,web_form,192.0.2.1\n" + // 1: ok, older accepted version
		ids[1] + ",newsletter,grant,2025-10-02T09:00:00Z,,paper,\n" + // 2: ok, current version
		ids[2] + ",newsletter,grant,yesterday,,web_form,\n" + // 3: bad time
		"sub_eeeeeeeeeeeeeeeeeeeeeeeeee,newsletter,grant,,,web_form,\n" + // 4: no such subject
		ids[2] + ",billing,grant,,,web_form,\n" + // 5: not a consent purpose
		"bob@example.com,newsletter,grant,,,web_form,\n" + // 6: not a subject ID
		ids[2] + ",newsletter,grant\n" + // 7: too few fields
		ids[2] + ",analytics,object,2025-11-01T00:00:00Z,,email,\n" // 8: ok
	resp, b := f.do(t, "POST", "/v1/consent/import", svc, csv, "Content-Type", "text/csv")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("import: got %d %s", resp.StatusCode, b)
	}
	if strings.Contains(string(b), "bob@example.com") || strings.Contains(string(b), "yesterday") {
		t.Error("the report quotes a cell")
	}
	var rep lethe.ImportReport
	json.Unmarshal(b, &rep)
	var rows []int
	for _, r := range rep.Rejected {
		rows = append(rows, r.Row)
	}
	if rep.Imported != 3 || fmt.Sprint(rows) != "[3 4 5 6 7]" || rep.LastRevision-rep.FirstRevision != 2 {
		t.Fatalf("report: %s", b)
	}
	_, b = f.do(t, "GET", fmt.Sprintf("/v1/consent/check?subject=%s&purpose=newsletter", ids[0]), svc, "")
	var d lethe.ConsentDecision
	json.Unmarshal(b, &d)
	if !d.Allowed || !d.Renew {
		t.Errorf("imported consent under an accepted older version: %s", b)
	}
	_, b = f.do(t, "GET", "/v1/subjects/"+ids[0]+"/consent", svc, "")
	if !strings.Contains(string(b), `"at":"2025-10-01T09:00:00Z"`) || !strings.Contains(string(b), `"channel":"web_form"`) {
		t.Errorf("imported history keeps the original time and channel: %s", b)
	}
	for _, bad := range []string{"", "who,what\nx,y\n", "subject_id,purpose\nx,y\n", "subject_id,kind\n\"unterminated,grant\n"} {
		if resp, b := f.do(t, "POST", "/v1/consent/import", svc, bad, "Content-Type", "text/csv"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("import of %q: got %d %s, want 400", bad, resp.StatusCode, b)
		}
	}
}
