package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The known-answer vectors in testdata/vectors.json pin every format this
// package writes. They are never regenerated: -update-vectors writes the
// file only when it does not exist (as when it was first made) and fails
// otherwise. To add a vector, add it to the file by hand, check it against
// an independent implementation, and add the check below. A format change
// gets a new version and new vectors; the v1 vectors stay and must keep
// passing, because v1 data must stay readable forever.
var updateVectors = flag.Bool("update-vectors", false, "create testdata/vectors.json if it does not exist (never overwrites)")

const vectorsPath = "testdata/vectors.json"

// sealWithNonce is Seal with a caller-chosen nonce, for the known-answer
// vectors only. It lives in a test file so that no production code path can
// choose a nonce.
func sealWithNonce(k *Key, nonce, plaintext, ad []byte) []byte {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	out := append([]byte{sealV1}, nonce...)
	return aead.Seal(out, nonce, plaintext, ad)
}

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

func (h hexBytes) key() *Key {
	if len(h) != 32 {
		panic("vector key is not 32 bytes")
	}
	k := Key(h)
	return &k
}

type vectorFile struct {
	Comment string `json:"comment"`
	Version int    `json:"version"`
	AD      []struct {
		Parts []string `json:"parts"`
		AD    hexBytes `json:"ad"`
	} `json:"ad"`
	Seal []struct {
		Key       hexBytes `json:"key"`
		Nonce     hexBytes `json:"nonce"`
		Plaintext hexBytes `json:"plaintext"`
		AD        hexBytes `json:"ad"`
		Sealed    hexBytes `json:"sealed"`
	} `json:"seal"`
	WrapKey []struct {
		KEK     hexBytes `json:"kek"`
		Nonce   hexBytes `json:"nonce"`
		DEK     hexBytes `json:"dek"`
		AD      hexBytes `json:"ad"`
		Wrapped hexBytes `json:"wrapped"`
	} `json:"wrap_key"`
	DeriveKey []struct {
		Root    hexBytes `json:"root"`
		Purpose string   `json:"purpose"`
		Tenant  string   `json:"tenant"`
		Kind    string   `json:"kind"`
		Key     hexBytes `json:"key"`
	} `json:"derive_key"`
	BlindIndex []struct {
		Key        hexBytes `json:"key"`
		Normalized string   `json:"normalized"`
		Index      hexBytes `json:"index"`
	} `json:"blind_index"`
	DeterministicToken []struct {
		Root       hexBytes `json:"root"`
		Tenant     string   `json:"tenant"`
		Subject    string   `json:"subject"`
		Field      string   `json:"field"`
		Normalized string   `json:"normalized"`
		Token      string   `json:"token"`
	} `json:"deterministic_token_v1"`
	KeyringID []struct {
		Key hexBytes `json:"key"`
		ID  string   `json:"id"`
	} `json:"keyring_id"`
}

// seq returns n bytes counting up from start, for fixed vector inputs.
func seq(start byte, n int) hexBytes {
	b := make(hexBytes, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// makeVectors computes the vectors from fixed inputs. It runs only when
// the file does not exist yet.
func makeVectors() *vectorFile {
	v := &vectorFile{
		Comment: "Known-answer vectors for internal/vault format v1. Never regenerate or edit existing entries: v1 data must stay readable forever. Byte values are hex.",
		Version: 1,
	}
	for _, parts := range [][]string{
		{}, {""}, {"ab", "c"}, {"a", "bc"},
		{"profile", "acme", "sub_test", "1"},
		{"identifier", "acme", "sub_test", "email"},
		{"subject-key", "acme", "sub_test"},
		{"tenant-key", "acme"},
		{string(bytes.Repeat([]byte("x"), 200))},
	} {
		v.AD = append(v.AD, struct {
			Parts []string `json:"parts"`
			AD    hexBytes `json:"ad"`
		}{parts, AD(parts...)})
	}
	for _, c := range []struct{ pt, ad []byte }{
		{nil, nil},
		{[]byte("lethe seal vector v1"), AD("profile", "acme", "sub_test", "1")},
		{seq(0, 33), AD("identifier", "acme", "sub_test", "email")},
	} {
		key, nonce := seq(0x00, 32), seq(0x40, 12)
		v.Seal = append(v.Seal, struct {
			Key       hexBytes `json:"key"`
			Nonce     hexBytes `json:"nonce"`
			Plaintext hexBytes `json:"plaintext"`
			AD        hexBytes `json:"ad"`
			Sealed    hexBytes `json:"sealed"`
		}{key, nonce, c.pt, c.ad, sealWithNonce(key.key(), nonce, c.pt, c.ad)})
	}
	{
		kek, nonce, dek := seq(0x20, 32), seq(0x50, 12), seq(0x80, 32)
		ad := AD("subject-key", "acme", "sub_test")
		v.WrapKey = append(v.WrapKey, struct {
			KEK     hexBytes `json:"kek"`
			Nonce   hexBytes `json:"nonce"`
			DEK     hexBytes `json:"dek"`
			AD      hexBytes `json:"ad"`
			Wrapped hexBytes `json:"wrapped"`
		}{kek, nonce, dek, ad, sealWithNonce(kek.key(), nonce, dek, ad)})
	}
	for _, c := range [][3]string{
		{"blind-index", "acme", "email"},
		{"blind-index", "acme", "phone"},
		{"token", "default", "card_last4"},
	} {
		root := seq(0x00, 32)
		k := DeriveKey(root.key(), c[0], c[1], c[2])
		v.DeriveKey = append(v.DeriveKey, struct {
			Root    hexBytes `json:"root"`
			Purpose string   `json:"purpose"`
			Tenant  string   `json:"tenant"`
			Kind    string   `json:"kind"`
			Key     hexBytes `json:"key"`
		}{root, c[0], c[1], c[2], k[:]})
	}
	for _, s := range []string{"", "jane.doe@example.com", "+442079460958"} {
		key := seq(0x60, 32)
		v.BlindIndex = append(v.BlindIndex, struct {
			Key        hexBytes `json:"key"`
			Normalized string   `json:"normalized"`
			Index      hexBytes `json:"index"`
		}{key, s, BlindIndex(key.key(), s)})
	}
	for _, c := range [][2]string{{"email", "jane.doe@example.com"}, {"", ""}} {
		root := seq(0xa0, 32)
		k := NewTokenKeys(root.key(), "default")
		tok, _ := k.DeterministicToken("default", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa", c[0], c[1])
		v.DeterministicToken = append(v.DeterministicToken, struct {
			Root       hexBytes `json:"root"`
			Tenant     string   `json:"tenant"`
			Subject    string   `json:"subject"`
			Field      string   `json:"field"`
			Normalized string   `json:"normalized"`
			Token      string   `json:"token"`
		}{root, "default", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa", c[0], c[1], tok})
	}
	for _, start := range []byte{0x00, 0x20} {
		key := seq(start, 32)
		v.KeyringID = append(v.KeyringID, struct {
			Key hexBytes `json:"key"`
			ID  string   `json:"id"`
		}{key, keyID(key.key())})
	}
	return v
}

func loadVectors(t *testing.T) *vectorFile {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if errors.Is(err, fs.ErrNotExist) && *updateVectors {
		data, err = json.MarshalIndent(makeVectors(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, '\n')
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		// O_EXCL: even a race cannot overwrite an existing file.
		f, err := os.OpenFile(vectorsPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSync(f, data); err != nil {
			t.Fatal(err)
		}
		t.Logf("created %s", vectorsPath)
	} else if err != nil {
		t.Fatalf("read vectors: %v (they are committed; -update-vectors only creates a missing file)", err)
	} else if *updateVectors {
		t.Fatalf("%s exists and is never regenerated; add new vectors by hand", vectorsPath)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if v.Version != 1 {
		t.Fatalf("vectors version: got %d, want 1", v.Version)
	}
	return &v
}

func TestVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.AD) == 0 || len(v.Seal) == 0 || len(v.WrapKey) == 0 || len(v.DeriveKey) == 0 ||
		len(v.BlindIndex) == 0 || len(v.DeterministicToken) == 0 || len(v.KeyringID) == 0 {
		t.Fatal("a section of the vectors is empty")
	}
	t.Run("ad", func(t *testing.T) {
		for i, c := range v.AD {
			if got := AD(c.Parts...); !bytes.Equal(got, c.AD) {
				t.Errorf("ad[%d]: got %x, want %x", i, got, []byte(c.AD))
			}
		}
	})
	t.Run("seal", func(t *testing.T) {
		for i, c := range v.Seal {
			if got := sealWithNonce(c.Key.key(), c.Nonce, c.Plaintext, c.AD); !bytes.Equal(got, c.Sealed) {
				t.Errorf("seal[%d]: sealed bytes differ from the vector", i)
			}
			got, err := Open(c.Key.key(), c.Sealed, c.AD)
			if err != nil || !bytes.Equal(got, c.Plaintext) {
				t.Errorf("seal[%d]: Open: got err %v or different plaintext, want the vector's", i, err)
			}
		}
	})
	t.Run("wrap_key", func(t *testing.T) {
		for i, c := range v.WrapKey {
			if got := sealWithNonce(c.KEK.key(), c.Nonce, c.DEK, c.AD); !bytes.Equal(got, c.Wrapped) {
				t.Errorf("wrap_key[%d]: wrapped bytes differ from the vector", i)
			}
			got, err := UnwrapKey(c.KEK.key(), c.Wrapped, c.AD)
			if err != nil || got != *c.DEK.key() {
				t.Errorf("wrap_key[%d]: UnwrapKey: got err %v or a different key, want the vector's", i, err)
			}
		}
	})
	t.Run("derive_key", func(t *testing.T) {
		for i, c := range v.DeriveKey {
			if got := DeriveKey(c.Root.key(), c.Purpose, c.Tenant, c.Kind); got != *c.Key.key() {
				t.Errorf("derive_key[%d]: derived key differs from the vector", i)
			}
		}
	})
	t.Run("blind_index", func(t *testing.T) {
		for i, c := range v.BlindIndex {
			if got := BlindIndex(c.Key.key(), c.Normalized); !bytes.Equal(got, c.Index) {
				t.Errorf("blind_index[%d]: got %x, want %x", i, got, []byte(c.Index))
			}
		}
	})
	t.Run("deterministic_token_v1", func(t *testing.T) {
		for i, c := range v.DeterministicToken {
			k := NewTokenKeys(c.Root.key(), c.Tenant)
			got, ok := k.DeterministicToken(c.Tenant, c.Subject, c.Field, c.Normalized)
			if !ok || got != c.Token {
				t.Errorf("deterministic_token_v1[%d]: got %s, want %s", i, got, c.Token)
			}
			if sub, det, ok := k.SubjectOf(c.Tenant, c.Token); !ok || !det || sub != c.Subject {
				t.Errorf("deterministic_token_v1[%d]: SubjectOf got %s %v %v, want %s", i, sub, det, ok, c.Subject)
			}
		}
	})
	t.Run("keyring_id", func(t *testing.T) {
		for i, c := range v.KeyringID {
			if got := keyID(c.Key.key()); got != c.ID {
				t.Errorf("keyring_id[%d]: got %s, want %s", i, got, c.ID)
			}
		}
	})
}
