package vault

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	root := NewKey()
	k := NewTokenKeys(&root, "acme")
	id := NewSubjectID()
	r1, ok1 := k.RandomToken("acme", id)
	r2, ok2 := k.RandomToken("acme", id)
	if !ok1 || !ok2 || r1 == r2 || !strings.HasPrefix(r1, "tok_") || len(r1) != len("tok_")+tokenChars {
		t.Fatalf("random tokens: got %q %q", r1, r2)
	}
	d1, _ := k.DeterministicToken("acme", id, "email", "jane@example.com")
	d2, _ := k.DeterministicToken("acme", id, "email", "jane@example.com")
	if d1 != d2 || !strings.HasPrefix(d1, "tokd_") {
		t.Fatalf("deterministic tokens differ: %q %q", d1, d2)
	}
	for _, other := range [][3]string{{id, "login", "jane@example.com"}, {id, "email", "jane@example.org"}, {NewSubjectID(), "email", "jane@example.com"}, {id, "emailjane", "@example.com"}} {
		if d, _ := k.DeterministicToken("acme", other[0], other[1], other[2]); d == d1 {
			t.Errorf("deterministic token ignores an input: %v", other[1:])
		}
	}
	for _, tok := range []string{r1, d1} {
		sub, det, ok := k.SubjectOf("acme", tok)
		if !ok || sub != id || det != strings.HasPrefix(tok, "tokd_") {
			t.Errorf("SubjectOf: got %s %v %v, want %s", sub, det, ok, id)
		}
		if _, _, ok := k.SubjectOf("globex", tok); ok {
			t.Error("another tenant's name opened the token")
		}
		other := NewTokenKeys(&root, "globex")
		if _, _, ok := other.SubjectOf("globex", tok); ok {
			t.Error("another tenant's keys opened the token")
		}
		b := []byte(tok)
		for i := len("tokd_"); i < len(b); i++ {
			orig := b[i]
			b[i] = 'A'
			if orig == 'A' {
				b[i] = 'B'
			}
			if _, _, ok := k.SubjectOf("acme", string(b)); ok {
				t.Fatalf("a token changed at %d still opens", i)
			}
			b[i] = orig
		}
	}
	if _, ok := k.RandomToken("acme", "sub_short"); ok {
		t.Error("a malformed subject ID was tokenised")
	}
	for _, bad := range []string{"", "tok_", "tok_" + strings.Repeat("A", 60), "tokx_abc", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if _, _, ok := k.SubjectOf("acme", bad); ok {
			t.Errorf("%q opened", bad)
		}
	}
}

func FuzzSubjectOf(f *testing.F) {
	root := NewKey()
	k := NewTokenKeys(&root, "acme")
	tok, _ := k.RandomToken("acme", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add(tok)
	f.Add("tokd_" + strings.Repeat("_", 60))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		sub, _, ok := k.SubjectOf("acme", s)
		if ok && sub != "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa" {
			t.Fatalf("a fuzzed token opened to another subject")
		}
	})
}
