package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func testKey(b byte) *Key {
	var k Key
	for i := range k {
		k[i] = b + byte(i)
	}
	return &k
}

var sizes = []int{0, 1, 15, 16, 17, 4096, 1 << 20}

func TestSealOpenRoundTrip(t *testing.T) {
	k := NewKey()
	ad := AD("profile", "acme", "sub_1", "1")
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := bytes.Repeat([]byte{0xa5}, n)
			sealed := Seal(&k, pt, ad)
			if got, want := len(sealed), n+29; got != want {
				t.Fatalf("sealed length: got %d, want %d", got, want)
			}
			if sealed[0] != 0x01 {
				t.Fatalf("version byte: got %#x, want 0x01", sealed[0])
			}
			got, err := Open(&k, sealed, ad)
			if err != nil {
				t.Fatalf("Open: got %v, want nil", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("Open: plaintext differs")
			}
			if got == nil {
				t.Fatal("Open: got a nil plaintext, want a non-nil empty one")
			}
		})
	}
}

// TestSealFormat checks Seal's output with an independent GCM: byte 0 is the
// version, bytes 1..12 the nonce, the rest the standard GCM ciphertext.
func TestSealFormat(t *testing.T) {
	k := testKey(1)
	pt, ad := []byte("format check"), AD("x")
	sealed := Seal(k, pt, ad)
	block, _ := aes.NewCipher(k[:])
	aead, _ := cipher.NewGCM(block)
	got, err := aead.Open(nil, sealed[1:13], sealed[13:], ad)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("standard GCM open of Seal output: got err %v, want the plaintext", err)
	}
	if again := sealWithNonce(k, sealed[1:13], pt, ad); !bytes.Equal(again, sealed) {
		t.Fatal("sealWithNonce with Seal's nonce: got different bytes, want Seal's")
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	k := testKey(2)
	seen := make(map[string]bool)
	for range 1000 {
		n := string(Seal(k, nil, nil)[1:13])
		if seen[n] {
			t.Fatal("nonce repeated")
		}
		seen[n] = true
	}
}

func TestOpenDoesNotModifyInput(t *testing.T) {
	k := testKey(3)
	sealed := Seal(k, []byte("some plaintext"), nil)
	orig := bytes.Clone(sealed)
	if _, err := Open(k, sealed, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, orig) {
		t.Fatal("Open modified its input")
	}
}

func TestOpenFailures(t *testing.T) {
	k, other := testKey(4), testKey(5)
	ad := AD("identifier", "acme", "sub_1", "email")
	sealed := Seal(k, []byte("0123456789abcdef0123"), ad)
	v2 := bytes.Clone(sealed)
	v2[0] = 0x02
	v0 := bytes.Clone(sealed)
	v0[0] = 0x00
	tests := []struct {
		name   string
		key    *Key
		sealed []byte
		ad     []byte
	}{
		{"wrong key", other, sealed, ad},
		{"wrong ad", k, sealed, AD("identifier", "acme", "sub_2", "email")},
		{"nil ad", k, sealed, nil},
		{"version 0x02", k, v2, ad},
		{"version 0x00", k, v0, ad},
		{"nil", k, nil, ad},
		{"empty", k, []byte{}, ad},
		{"version only", k, sealed[:1], ad},
		{"one short of minimum", k, sealed[:28], ad},
		{"truncated by one", k, sealed[:len(sealed)-1], ad},
		{"tag dropped", k, sealed[:len(sealed)-16], ad},
		{"extended", k, append(bytes.Clone(sealed), 0), ad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.key, tt.sealed, tt.ad)
			if !errors.Is(err, ErrOpen) || got != nil {
				t.Fatalf("Open: got err %v, want ErrOpen and no plaintext", err)
			}
		})
	}
	for i := 0; i < 29; i++ {
		// Every length below the minimum, whatever the bytes.
		if _, err := Open(k, sealed[:i], ad); !errors.Is(err, ErrOpen) {
			t.Errorf("Open of %d bytes: got %v, want ErrOpen", i, err)
		}
	}
}

// TestTamper flips every bit position class of every byte of a sealed value
// and of its associated data; nothing may open.
func TestTamper(t *testing.T) {
	k := testKey(6)
	ad := AD("profile", "acme", "sub_1", "7")
	sealed := Seal(k, []byte("a profile that must not be altered"), ad)
	for _, mask := range []byte{0x01, 0x80, 0xff} {
		for i := range sealed {
			s := bytes.Clone(sealed)
			s[i] ^= mask
			if _, err := Open(k, s, ad); !errors.Is(err, ErrOpen) {
				t.Errorf("sealed byte %d ^ %#x: got %v, want ErrOpen", i, mask, err)
			}
		}
		for i := range ad {
			a := bytes.Clone(ad)
			a[i] ^= mask
			if _, err := Open(k, sealed, a); !errors.Is(err, ErrOpen) {
				t.Errorf("ad byte %d ^ %#x: got %v, want ErrOpen", i, mask, err)
			}
		}
	}
}

func TestErrOpenText(t *testing.T) {
	for _, want := range []string{"cannot be opened", "wrong key", "wrong context", "tampered"} {
		if !bytes.Contains([]byte(ErrOpen.Error()), []byte(want)) {
			t.Errorf("ErrOpen text: got %q, want it to mention %q", ErrOpen, want)
		}
	}
}

func TestAD(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
	}{
		{"split point", []string{"ab", "c"}, []string{"a", "bc"}},
		{"empty part", []string{"a", ""}, []string{"a"}},
		{"no parts vs one empty", []string{}, []string{""}},
		{"order", []string{"a", "b"}, []string{"b", "a"}},
		{"length byte lookalike", []string{"\x01a"}, []string{"", "a"}},
		{"long part", []string{string(make([]byte, 128))}, []string{string(make([]byte, 127)), ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(AD(tt.a...), AD(tt.b...)) {
				t.Fatalf("AD(%q) == AD(%q), want them to differ", tt.a, tt.b)
			}
		})
	}
	if got := AD("tenant-key", "acme"); !bytes.HasPrefix(got, []byte("lethe-ad-v1")) {
		t.Fatalf("AD prefix: got %q, want lethe-ad-v1…", got)
	}
}

func TestWrapKey(t *testing.T) {
	kek, dek := NewKey(), NewKey()
	ad := AD("subject-key", "acme", "sub_1")
	wrapped := WrapKey(&kek, dek, ad)
	if got, want := len(wrapped), 61; got != want {
		t.Fatalf("wrapped length: got %d, want %d", got, want)
	}
	got, err := UnwrapKey(&kek, wrapped, ad)
	if err != nil || got != dek {
		t.Fatalf("UnwrapKey: got err %v or another key, want the key", err)
	}
	other := NewKey()
	for name, c := range map[string]struct {
		kek     *Key
		wrapped []byte
		ad      []byte
	}{
		"wrong kek":     {&other, wrapped, ad},
		"wrong ad":      {&kek, wrapped, AD("subject-key", "acme", "sub_2")},
		"truncated":     {&kek, wrapped[:60], ad},
		"31-byte value": {&kek, Seal(&kek, make([]byte, 31), ad), ad},
		"33-byte value": {&kek, Seal(&kek, make([]byte, 33), ad), ad},
		"empty value":   {&kek, Seal(&kek, nil, ad), ad},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := UnwrapKey(c.kek, c.wrapped, c.ad); !errors.Is(err, ErrOpen) {
				t.Fatalf("UnwrapKey: got %v, want ErrOpen", err)
			}
		})
	}
}

func TestKeyRedacted(t *testing.T) {
	k := testKey(0x41) // bytes 'A', 'B', … would show in %s
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		if got := fmt.Sprintf(verb, k); got != "[redacted]" {
			t.Errorf("Sprintf(%q, key): got %q, want [redacted]", verb, got)
		}
		if got := fmt.Sprintf(verb, *k); got != "[redacted]" {
			t.Errorf("Sprintf(%q, *key): got %q, want [redacted]", verb, got)
		}
	}
	if _, err := json.Marshal(*k); err == nil {
		t.Error("json.Marshal(key): got nil error, want one")
	}
	if err := fmt.Errorf("wrap: %v", *k); bytes.Contains([]byte(err.Error()), []byte("ABC")) {
		t.Error("an error formatting a key shows its bytes")
	}
}

func TestNewKey(t *testing.T) {
	a, b := NewKey(), NewKey()
	if a == b || a == (Key{}) {
		t.Fatal("NewKey: got equal or zero keys, want distinct random keys")
	}
}
