package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
)

func TestTokensOverHTTP(t *testing.T) {
	f := newFixture(t, api.Options{})
	svc := f.addKey(t, "shop", lethe.RoleService)
	_, b := f.do(t, "POST", "/v1/subjects", svc, `{"identifiers":{"email":"pay@example.com"},"profile":{"name":"Pia"}}`)
	var s lethe.SubjectView
	json.Unmarshal(b, &s)

	resp, b := f.do(t, "POST", "/v1/tokens", svc, fmt.Sprintf(`{"subject_id":%q,"tokens":[{"field":"card","value":"5500 0000 0000 0004"},{"field":"name"},{"field":"email","value":"PAY@example.com","deterministic":true}]}`, s.ID))
	if resp.StatusCode != 201 || strings.Contains(string(b), "5500") {
		t.Fatalf("tokenize: got %d %s", resp.StatusCode, b)
	}
	var tr struct{ Tokens []lethe.Token }
	json.Unmarshal(b, &tr)
	body := fmt.Sprintf(`{"purpose":"billing","tokens":[%q,%q,%q,"tok_unknown"]}`, tr.Tokens[0].Token, tr.Tokens[1].Token, tr.Tokens[2].Token)
	resp, b = f.do(t, "POST", "/v1/detokenize", svc, body)
	if resp.StatusCode != 200 {
		t.Fatalf("detokenize: got %d %s", resp.StatusCode, b)
	}
	for _, want := range []string{`"value":"5500 0000 0000 0004"`, `"value":"Pia"`, `"value":"pay@example.com"`, `"status":"not_found"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("detokenize answer lacks %s: %s", want, b)
		}
	}
	if resp, _ := f.do(t, "POST", "/v1/detokenize", svc, fmt.Sprintf(`{"tokens":[%q]}`, tr.Tokens[0].Token)); resp.StatusCode != 400 {
		t.Errorf("no purpose: got %d, want 400", resp.StatusCode)
	}
	if resp, _ := f.do(t, "POST", "/v1/detokenize", svc, `{"purpose":"billing","tokens":["tok_unknown"]}`); resp.StatusCode != 404 {
		t.Errorf("single unknown token: got %d, want 404", resp.StatusCode)
	}
	if resp, _ := f.do(t, "DELETE", "/v1/subjects/"+s.ID, svc, ""); resp.StatusCode != 200 {
		t.Fatalf("erase: got %d", resp.StatusCode)
	}
	resp, b = f.do(t, "POST", "/v1/detokenize", svc, fmt.Sprintf(`{"purpose":"billing","tokens":[%q]}`, tr.Tokens[0].Token))
	if resp.StatusCode != 410 {
		t.Fatalf("single token of an erased subject: got %d %s, want 410", resp.StatusCode, b)
	}
	resp, b = f.do(t, "POST", "/v1/detokenize", svc, body)
	if resp.StatusCode != 200 || strings.Count(string(b), `"status":"gone"`) != 3 || strings.Contains(string(b), "5500") {
		t.Fatalf("batch after erasure: got %d %s", resp.StatusCode, b)
	}
	if strings.Contains(f.logs.String(), "5500") || strings.Contains(f.logs.String(), "Pia") {
		t.Error("a token value reached the log")
	}
}
