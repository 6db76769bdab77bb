package vault

import (
	"bytes"
	"strings"
	"testing"
)

func TestDeriveKey(t *testing.T) {
	root := NewKey()
	base := DeriveKey(&root, "blind-index", "acme", "email")
	if again := DeriveKey(&root, "blind-index", "acme", "email"); again != base {
		t.Fatal("DeriveKey is not deterministic")
	}
	other := NewKey()
	tests := []struct {
		name string
		got  Key
	}{
		{"other tenant", DeriveKey(&root, "blind-index", "other", "email")},
		{"other kind", DeriveKey(&root, "blind-index", "acme", "phone")},
		{"other purpose", DeriveKey(&root, "token", "acme", "email")},
		{"shifted boundary", DeriveKey(&root, "blind-index", "acm", "eemail")},
		{"other root", DeriveKey(&other, "blind-index", "acme", "email")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got == base {
				t.Fatal("got the same key, want a different one")
			}
		})
	}
	if base == root {
		t.Fatal("derived key equals its root")
	}
}

func TestBlindIndex(t *testing.T) {
	k1, k2 := NewKey(), NewKey()
	a := BlindIndex(&k1, "jane@example.com")
	if len(a) != 32 {
		t.Fatalf("length: got %d, want 32", len(a))
	}
	if !bytes.Equal(a, BlindIndex(&k1, "jane@example.com")) {
		t.Fatal("BlindIndex is not deterministic")
	}
	if bytes.Equal(a, BlindIndex(&k2, "jane@example.com")) {
		t.Fatal("two keys give the same index")
	}
	if bytes.Equal(a, BlindIndex(&k1, "jane@example.co")) {
		t.Fatal("two values give the same index")
	}
}

func TestTokens(t *testing.T) {
	r := RandomToken()
	if !strings.HasPrefix(r, "tok_") || len(r) != 36 || !IsToken(r) {
		t.Fatalf("RandomToken: got %q, want tok_ and 32 base64url characters", r)
	}
	if RandomToken() == r {
		t.Fatal("RandomToken repeated")
	}
	k := NewKey()
	d := DeterministicToken(&k, "email", "jane@example.com")
	if !strings.HasPrefix(d, "tokd_") || len(d) != 37 || !IsToken(d) {
		t.Fatalf("DeterministicToken: got %q, want tokd_ and 32 base64url characters", d)
	}
	if DeterministicToken(&k, "email", "jane@example.com") != d {
		t.Fatal("DeterministicToken is not deterministic")
	}
	if DeterministicToken(&k, "login", "jane@example.com") == d {
		t.Fatal("DeterministicToken ignores the field")
	}
	if DeterministicToken(&k, "emailjane", "@example.com") == d {
		t.Fatal("DeterministicToken is ambiguous between field and value")
	}
}

func TestIsToken(t *testing.T) {
	body := strings.Repeat("aZ0-_", 7)[:32]
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"random", "tok_" + body, true},
		{"deterministic", "tokd_" + body, true},
		{"empty", "", false},
		{"prefix only", "tok_", false},
		{"short", "tok_" + body[:31], false},
		{"long", "tok_" + body + "a", false},
		{"tokd short", "tokd_" + body[:31], false},
		{"padding", "tok_" + body[:31] + "=", false},
		{"std alphabet +", "tok_" + body[:31] + "+", false},
		{"std alphabet /", "tok_" + body[:31] + "/", false},
		{"space", "tok_" + body[:31] + " ", false},
		{"non-ascii", "tok_" + body[:30] + "é", false},
		{"upper prefix", "TOK_" + body, false},
		{"other prefix", "sub_" + body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsToken(tt.s); got != tt.want {
				t.Fatalf("IsToken: got %v, want %v", got, tt.want)
			}
		})
	}
}
