package vault

import (
	"bytes"
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
