package vault_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
)

func str(s string) *string { return &s }

type denyPurpose struct{ deny string }

func (d denyPurpose) Allowed(_ context.Context, _, _, purpose string) (bool, error) {
	return purpose != d.deny, nil
}

func TestTokenizeDetokenize(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		ctx := context.Background()
		s, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": "tok@example.com"}, Profile: json.RawMessage(`{"name":"Tia","address":{"city":"Oslo"}}`)})
		if err != nil {
			t.Fatal(err)
		}
		toks, err := f.v.Tokenize(ctx, actor, "", s.ID, []lethe.TokenRequest{
			{Field: "card", Value: str("4111 1111 1111 1111")},
			{Field: "email", Value: str("Tok@Example.com"), Deterministic: true},
			{Field: "email", Value: str("tok@example.com"), Deterministic: true},
			{Field: "name"},
			{Field: "address"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if toks[0].Kind != "random" || toks[1].Kind != "deterministic" || toks[3].Kind != "reference" {
			t.Fatalf("kinds: got %+v", toks)
		}
		if toks[1].Token != toks[2].Token {
			t.Error("deterministic tokens of one (normalised) value differ")
		}
		again, err := f.v.Tokenize(ctx, actor, "", s.ID, []lethe.TokenRequest{{Field: "email", Value: str("tok@example.com"), Deterministic: true}})
		if err != nil || again[0].Token != toks[1].Token {
			t.Errorf("deterministic token asked again: got %v, %v", again, err)
		}
		for _, tk := range toks {
			if strings.Contains(tk.Token, "4111") || strings.Contains(tk.Token, "tok@") {
				t.Fatal("a token holds its value")
			}
		}

		a := actor
		a.Purpose = "billing"
		list := []string{toks[0].Token, toks[1].Token, toks[3].Token, toks[4].Token, "tok_nonsense", toks[0].Token}
		res, err := f.v.Detokenize(ctx, a, "", list)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`"4111 1111 1111 1111"`, `"tok@example.com"`, `"Tia"`, `{"city":"Oslo"}`, "", `"4111 1111 1111 1111"`}
		for i, r := range res {
			if want[i] == "" {
				if r.Status != lethe.TokenNotFound {
					t.Errorf("token %d: got status %s, want not_found", i, r.Status)
				}
				continue
			}
			if r.Status != lethe.TokenOK || string(r.Value) != want[i] {
				t.Errorf("token %d: got %s %s, want ok %s", i, r.Status, r.Value, want[i])
			}
		}

		// A reference follows rectification.
		if _, err := f.v.UpdateSubject(ctx, actor, "", s.ID, lethe.ProfileChange{Patch: json.RawMessage(`{"name":"Tia B"}`), Reason: "married"}); err != nil {
			t.Fatal(err)
		}
		res, _ = f.v.Detokenize(ctx, a, "", []string{toks[3].Token})
		if string(res[0].Value) != `"Tia B"` {
			t.Errorf("reference after rectification: got %s", res[0].Value)
		}

		// Another tenant sees nothing.
		res, err = f.v.Detokenize(ctx, a, "globex", []string{toks[0].Token})
		if err != nil || res[0].Status != lethe.TokenNotFound {
			t.Errorf("another tenant: got %+v, %v", res, err)
		}
		// Without a purpose, nothing.
		if _, err := f.v.Detokenize(ctx, actor, "", []string{toks[0].Token}); code(err) != lethe.EINVALID {
			t.Errorf("no purpose: got %v, want invalid", err)
		}

		// After erasure every token answers gone, though its row is deleted.
		if _, err := f.v.EraseSubject(ctx, actor, "", s.ID); err != nil {
			t.Fatal(err)
		}
		res, err = f.v.Detokenize(ctx, a, "", list[:4])
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Status != lethe.TokenGone || r.Value != nil {
				t.Errorf("token %d after erasure: got %s %s, want gone", i, r.Status, r.Value)
			}
		}
		if _, err := f.v.Tokenize(ctx, actor, "", s.ID, []lethe.TokenRequest{{Field: "x", Value: str("y")}}); code(err) != lethe.EGONE {
			t.Errorf("tokenize after erasure: got %v, want gone", err)
		}
	})
}

func TestDetokenizeDeniedPurposeAndBatch(t *testing.T) {
	f := newFixture(t, engines()[0])
	ctx := context.Background()
	var err error
	f.v, err = newServiceWith(f, denyPurpose{deny: "marketing"})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i := 0; i < 50; i++ {
		s, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Identifiers: map[string]string{"email": fmt.Sprintf("b%d@example.com", i)}})
		if err != nil {
			t.Fatal(err)
		}
		toks, err := f.v.Tokenize(ctx, actor, "", s.ID, []lethe.TokenRequest{{Field: "v1", Value: str("a")}, {Field: "v2", Value: str("b")}})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, toks[0].Token, toks[1].Token)
	}
	before := len(f.audit.actions())
	a := actor
	a.Purpose = "support"
	res, err := f.v.Detokenize(ctx, a, "", tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != lethe.TokenOK {
			t.Fatalf("token %d: got %s", i, r.Status)
		}
	}
	if n := len(f.audit.actions()) - before; n != 50 {
		t.Errorf("audit events for 100 tokens of 50 subjects: got %d, want 50", n)
	}
	a.Purpose = "marketing"
	res, _ = f.v.Detokenize(ctx, a, "", tokens[:4])
	for i, r := range res {
		if r.Status != lethe.TokenDenied || r.Value != nil {
			t.Errorf("token %d for a denied purpose: got %s %s", i, r.Status, r.Value)
		}
	}
}
