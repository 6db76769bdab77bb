package vault

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
)

// FuzzOpen checks that arbitrary bytes never panic Open and never open, and
// that any change to a valid sealed value (ciphertext malleability) makes it
// fail to open.
func FuzzOpen(f *testing.F) {
	k := testKey(0x10)
	ad := AD("profile", "acme", "sub_1", "1")
	// Fixed nonce: the fuzzing workers are separate processes and must agree
	// on the one valid value.
	valid := sealWithNonce(k, make([]byte, 12), []byte("a sealed profile"), ad)
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Add(valid)
	f.Add(append([]byte{0x02}, valid[1:]...))
	f.Add(bytes.Repeat([]byte{0x01}, 29))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Only the one value sealed above opens; forging another is
		// what GCM's tag prevents.
		if pt, err := Open(k, data, ad); !bytes.Equal(data, valid) && (!errors.Is(err, ErrOpen) || pt != nil) {
			t.Fatalf("Open of arbitrary bytes: got err %v, want ErrOpen", err)
		}
		// Use data as an XOR mask over the valid value, and append what is
		// longer: any change must be refused.
		s := bytes.Clone(valid)
		for i, b := range data {
			if i < len(s) {
				s[i] ^= b
			} else {
				s = append(s, b)
			}
		}
		_, err := Open(k, s, ad)
		if changed := !bytes.Equal(s, valid); changed && !errors.Is(err, ErrOpen) {
			t.Fatalf("Open of a changed value: got %v, want ErrOpen", err)
		} else if !changed && err != nil {
			t.Fatalf("Open of the unchanged value: got %v, want nil", err)
		}
	})
}

// FuzzUnwrapKey checks that arbitrary bytes never unwrap, and that a sealed
// value unwraps as a key exactly when it is 32 bytes long.
func FuzzUnwrapKey(f *testing.F) {
	kek := testKey(0x20)
	ad := AD("subject-key", "acme", "sub_1")
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Add(make([]byte, 32))
	f.Add(make([]byte, 61))
	dek := testKey(0x30)
	valid := sealWithNonce(kek, make([]byte, 12), dek[:], ad) // fixed nonce, as in FuzzOpen
	f.Add(valid)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := UnwrapKey(kek, data, ad); !bytes.Equal(data, valid) && !errors.Is(err, ErrOpen) {
			t.Fatalf("UnwrapKey of arbitrary bytes: got %v, want ErrOpen", err)
		}
		got, err := UnwrapKey(kek, Seal(kek, data, ad), ad)
		if len(data) == 32 {
			if err != nil || !bytes.Equal(got[:], data) {
				t.Fatalf("UnwrapKey of a sealed 32-byte value: got %v, want the key", err)
			}
		} else if !errors.Is(err, ErrOpen) || got != (Key{}) {
			t.Fatalf("UnwrapKey of a sealed %d-byte value: got %v, want ErrOpen", len(data), err)
		}
	})
}

var fuzzKinds = []string{"email", "phone", "login", "shop_customer_id"}

// FuzzNormalize checks that Normalize never panics, is idempotent, and fails
// only with EINVALID and a message from the closed set that never holds the
// value.
func FuzzNormalize(f *testing.F) {
	for i, v := range []string{
		"jane.doe@example.com", " Jane.Doe@Example.COM ", "Jane <jane@example.com>",
		"\"a b\"@example.com", "a@[127.0.0.1]", "émilie@example.fr", "İ@example.com",
		"+442079460958", "+44 (0)20 7946 0958", "+1 800 FLOWERS", "+44 20 7946 0958 ext 1",
		"020 7946 0958", "Ⱥ", "ǅ", "A\u030asa", "\u1e9e", "K", "\xff", "a\x00b", "",
	} {
		f.Add(uint8(i), v)
	}
	f.Fuzz(func(t *testing.T, k uint8, v string) {
		kind := fuzzKinds[int(k)%len(fuzzKinds)]
		got, err := Normalize(kind, v)
		if err != nil {
			if code := lethe.ErrorCode(err); code != lethe.EINVALID {
				t.Fatalf("code: got %s, want %s", code, lethe.EINVALID)
			}
			msg := lethe.ErrorMessage(err)
			if !slices.ContainsFunc(normalizeReasons, func(r string) bool { return msg == kind+" "+r }) {
				t.Fatalf("message %q is not one of the fixed messages", msg)
			}
			if tv := strings.TrimSpace(v); len(tv) >= 4 && strings.Contains(msg, tv) && !strings.Contains(kind+" "+strings.Join(normalizeReasons, "|"), tv) {
				t.Fatal("the message contains the value")
			}
			return
		}
		again, err := Normalize(kind, got)
		if err != nil {
			t.Fatalf("Normalize of a normalised %s: got %v, want nil", kind, err)
		}
		if again != got {
			t.Fatalf("%s not idempotent: got %q, then %q", kind, got, again)
		}
	})
}

// FuzzParseKeyring checks that the keyring parser never panics, that what
// it accepts formats back to an equal ring, and that its errors never echo
// long pieces of the input (which would be key material).
func FuzzParseKeyring(f *testing.F) {
	k1, k2 := *testKey(1), *testKey(2)
	good := formatKeyring([]keyEntry{{keyID(&k1), k1}, {keyID(&k2), k2}})
	f.Add(good)
	f.Add([]byte("lethe-keyring-v1\n"))
	f.Add([]byte("lethe-keyring-v1\nlocal-0000000000000000 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	f.Add([]byte(""))
	f.Add(bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseKeyring(data)
		if err != nil {
			for _, field := range strings.Fields(string(data)) {
				if len(field) >= 12 && !strings.Contains(keyringHeader, field) && strings.Contains(err.Error(), field) {
					t.Fatalf("the error echoes %d bytes of input", len(field))
				}
			}
			return
		}
		again, err := parseKeyring(formatKeyring(entries))
		if err != nil {
			t.Fatalf("parse of the formatted ring: %v", err)
		}
		if !slices.Equal(again, entries) {
			t.Fatal("format then parse changed the ring")
		}
		if len(entries) == 0 {
			t.Fatal("accepted a ring with no keys")
		}
	})
}
