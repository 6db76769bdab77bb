package vault_test

import (
	"bytes"
	"fmt"

	"github.com/lethe-privacy/lethe/internal/vault"
)

func ExampleSeal() {
	subjectKey := vault.NewKey()
	ad := vault.AD("profile", "acme", "sub_123", "1")

	sealed := vault.Seal(&subjectKey, []byte(`{"name":"Jane"}`), ad)
	profile, err := vault.Open(&subjectKey, sealed, ad)
	fmt.Println(string(profile), err)

	// The same bytes under another subject's context do not open.
	_, err = vault.Open(&subjectKey, sealed, vault.AD("profile", "acme", "sub_456", "1"))
	fmt.Println(err)
	// Output:
	// {"name":"Jane"} <nil>
	// vault: the ciphertext cannot be opened: wrong key, wrong context or tampered
}

func ExampleBlindIndex() {
	root := vault.NewKey() // the deployment's blind-index root key
	emailKey := vault.DeriveKey(&root, "blind-index", "acme", "email")

	stored, _ := vault.Normalize("email", "Jane.Doe@Example.com")
	lookup, _ := vault.Normalize("email", "  jane.doe@example.COM")
	fmt.Println(bytes.Equal(vault.BlindIndex(&emailKey, stored), vault.BlindIndex(&emailKey, lookup)))

	// Another tenant's key gives another index for the same address.
	otherKey := vault.DeriveKey(&root, "blind-index", "globex", "email")
	fmt.Println(bytes.Equal(vault.BlindIndex(&emailKey, stored), vault.BlindIndex(&otherKey, stored)))
	// Output:
	// true
	// false
}

func ExampleWrapKey() {
	tenantKey, subjectKey := vault.NewKey(), vault.NewKey()
	ad := vault.AD("subject-key", "acme", "sub_123")

	wrapped := vault.WrapKey(&tenantKey, subjectKey, ad) // goes to the key store
	unwrapped, err := vault.UnwrapKey(&tenantKey, wrapped, ad)
	fmt.Println(unwrapped == subjectKey, err)
	// Output: true <nil>
}

func ExampleMask() {
	fmt.Println(vault.Mask("email", "jane.doe@example.com"))
	fmt.Println(vault.Mask("phone", "+442079460958"))
	fmt.Println(vault.Mask("login", "janedoe"))
	// Output:
	// j***@example.com
	// +44*******958
	// j***
}
