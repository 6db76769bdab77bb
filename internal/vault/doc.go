// Package vault is the cryptographic core of Lethe's vault: keys, sealing,
// key wrapping, blind indexes, identifier normalisation, tokens and a cache
// of unwrapped keys. It does no storage, no HTTP and no logging; the stores
// keep the bytes it produces and the service wires the two together.
//
// # What is encrypted
//
// Every personal-data value the vault holds is sealed (AES-256-GCM, see
// [Seal]) under the data key of the subject it belongs to: each version of a
// subject's profile, each identifier's normalised value, and each token's
// value. Associated data built with [AD] binds a sealed value to where it
// belongs (tenant, subject, kind or version), so a ciphertext copied to
// another row or another subject does not open. What stays in the clear is
// what is needed to find and order rows and carries no personal data:
// tenant names, random subject IDs, identifier kinds, version numbers, times,
// principals, tokens (random or keyed) and blind indexes (keyed HMACs).
//
// # Key hierarchy
//
//	master key-encryption key      held by a KMS and never leaves it
//	│                              (LocalKMS: a keyring file, or LETHE_MASTER_KEY)
//	├─ tenant key-encryption key   random, one per tenant (versioned); wrapped
//	│  │                            by the KMS (KMS.Wrap), stored in the key store
//	│  └─ subject data key         random, one per subject; wrapped by the
//	│     │                         tenant key (WrapKey), stored in the key store
//	│     └─ sealed values         profile versions, identifiers, token values,
//	│                               sealed with Seal, stored in the data store
//	├─ blind-index root key        random, one per deployment; wrapped by the
//	│  └─ index key per             KMS, stored in the key store as a deployment
//	│     (tenant, kind)            secret; DeriveKey (HKDF-SHA256) gives the
//	│                               per-tenant, per-kind key BlindIndex uses
//	└─ token root key              random, one per deployment; wrapped and
//	   └─ per tenant                stored like the index root; DeriveKey gives
//	                                the TokenKeys that seal a token's subject ID
//
// Keys are apart from data: wrapped keys live in the key store, sealed values
// in the data store, so a data-store backup alone opens nothing. Erasing a
// subject destroys its wrapped data key, after which every copy of its
// sealed values, in any backup, is noise (crypto-shredding); erasing a tenant
// destroys the tenant key and with it every subject key under it. Blind
// indexes are keyed per tenant and per kind and tokens per tenant, so the
// same email in two tenants, or as a login and an email, indexes differently,
// and nobody without the deployment's keys can test a guess against them.
//
// # Rotation
//
// Each wrapped key is stored with the ID of the key that wrapped it
// (lethe.WrappedKey.KEKID). Rotating the master key ([LocalKMS.Rotate])
// appends a new current key to the keyring and keeps the old ones: new
// wraps use the new key, old wraps still unwrap under the key their ID
// names, and [RotateMaster] (or [RewrapStale], to resume) rewraps every
// version of every tenant key and every deployment secret under the new
// key while the server keeps serving: a LocalKMS follows its keyring file,
// so a server reading the same file picks the new key up without a
// restart.
//
// A tenant's key has versions, the highest the current one, and a subject
// key's KEKID names the version that wraps it ([lethe.TenantKEKID]).
// [RotateTenantKey] adds a version, rewraps every subject key of the tenant
// under it and deletes the older versions; running it again finishes an
// interrupted one. The key store stores subject keys only under the current
// version, so a Service, which reads the current version again at most a
// second after it last did, retries a create it wrapped under a version a
// rotation left behind, and never wraps a key under a version about to be
// deleted. Rotating only rewraps keys; no sealed value is re-encrypted.
// Subject keys are not rotated: their lifetime ends with the subject, which
// is the point of having them.
//
// # Format compatibility
//
// Every format this package writes starts with, or is named by, a version:
// sealed values and wrapped keys begin with the version byte 0x01, associated
// data with the domain "lethe-ad-v1", the keyring file with the line
// "lethe-keyring-v1". Version 1 formats are readable forever. A change to any
// of them, including a new cipher, gets a new version byte (or name), and
// readers keep opening every earlier version. The known-answer vectors in
// testdata/vectors.json pin each format; they are never regenerated, only
// added to.
//
// All functions and methods are safe for concurrent use unless their
// documentation says otherwise.
package vault
