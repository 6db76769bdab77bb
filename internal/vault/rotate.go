package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// rewrapBatch is how many stale keys one page of the key store lists.
const rewrapBatch = 100

// maxReportedFailures bounds the keys named in the error of a rewrap some
// keys of which could not be opened.
const maxReportedFailures = 5

// Rotation reports what RotateMaster or RewrapStale did, also when it
// failed part way. A version of a tenant's key counts as a key of its own.
type Rotation struct {
	// KEKID is the master key the keys were rewrapped under: the new key
	// of RotateMaster, the current one of RewrapStale; "" if RotateMaster
	// failed before adding a key.
	KEKID string
	// Rewrapped counts the keys this call moved to KEKID.
	Rewrapped int
	// Skipped counts the keys that were erased, or rewrapped by another
	// process, between being listed and being rewrapped.
	Skipped int
}

// RotateMaster rotates the master key of the local keyring at path, which
// kms was opened from: it adds a new current key to the file and to kms
// (LocalKMS.Rotate), so that kms, and every process following the file,
// wraps new keys under it while still unwrapping keys wrapped under the old
// ones; then it rewraps every deployment secret and every version of every
// tenant key still under an older master key, as RewrapStale does. Subject keys are wrapped by
// tenant keys and are not touched, and no sealed value is re-encrypted, so
// a rotation costs one unwrap and one wrap per tenant, however many
// subjects there are. The old keys stay in the keyring: anything that was
// wrapped under them, such as a key-store backup, still opens with it.
//
// It runs while the vault serves: each rewrap is a compare-and-swap
// (lethe.KeyRewrapper.RewrapKey), so a key changed meanwhile is never
// overwritten, and the key itself, which the vault may hold unwrapped, is
// the same before and after. If it fails after adding the key, or is
// interrupted, the rotation is still valid, only unfinished: RewrapStale
// finishes it. progress, if not nil, is called after each key with how
// many have been handled and how many there are (a total that may grow if
// keys are made under an old key meanwhile), and once with 0 before the
// first.
//
// It fails, changing nothing, for a ring from LETHE_MASTER_KEY, which
// holds one key and cannot be rotated; for a path other than the file kms
// was opened from; for a ring that cannot open the key store's deployment
// secrets (the master key of another deployment); and for the reasons
// LocalKMS.Rotate gives. Its errors name keys by kind and name, never
// carry key material, and are EINTERNAL. The Rotation it returns is
// filled as far as it got.
func RotateMaster(ctx context.Context, kms *LocalKMS, path string, keys lethe.KeyRewrapper, progress func(done, total int)) (Rotation, error) {
	if kms.fromEnv {
		return Rotation{}, errors.New("rotate master key: the master key comes from LETHE_MASTER_KEY, which holds one key and cannot be rotated; use a keyring file (master.key in the data directory) instead")
	}
	if filepath.Clean(path) != filepath.Clean(kms.path) {
		return Rotation{}, fmt.Errorf("rotate master key: the keyring was opened from %s, not %s", kms.path, path)
	}
	if err := checkOpens(ctx, kms, keys); err != nil {
		return Rotation{}, fmt.Errorf("rotate master key: %w", err)
	}
	id, err := kms.Rotate(path)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate master key: %w", err)
	}
	r, err := rewrap(ctx, kms, keys, progress)
	r.KEKID = id
	if err != nil {
		return r, fmt.Errorf("rotated the master key to %s, but rewrapping is unfinished (run the rewrap again to finish it): %w", id, err)
	}
	return r, nil
}

// RewrapStale rewraps every deployment secret and tenant key version that
// is not wrapped under kms's current master key: it unwraps each with the key its
// ID names and wraps it under the current key, bound to the same associated
// data (AD("secret", name), AD("tenant-key", tenant)), and stores it with a
// compare-and-swap. It first re-reads the keyring file (LocalKMS.Reload),
// so that a rotation made by another process is included. It is what
// finishes a rotation that was interrupted, and what moves keys made under
// an old key by an instance that had not yet seen a rotation; with nothing
// stale it changes nothing.
//
// Keys that cannot be unwrapped (their master key is not in the ring, or
// their bytes are corrupt) are left as they are and the others rewrapped;
// the error then names them. It also fails if, at the end, keys are still
// under an older master key (made meanwhile by an instance with an older
// keyring): running it again moves them. Progress, errors and the
// Rotation are as for RotateMaster.
func RewrapStale(ctx context.Context, kms *LocalKMS, keys lethe.KeyRewrapper, progress func(done, total int)) (Rotation, error) {
	if err := ctx.Err(); err != nil {
		return Rotation{}, err
	}
	if err := kms.Reload(); err != nil {
		return Rotation{}, fmt.Errorf("rewrap: %w", err)
	}
	r, err := rewrap(ctx, kms, keys, progress)
	if err != nil {
		return r, fmt.Errorf("rewrap: %w", err)
	}
	return r, nil
}

// checkOpens refuses a keyring that cannot open the key store's
// deployment secrets, say the master key of another deployment: adding a
// key to that would be no rotation of this deployment's key, only a
// confusing change to another file. Every running deployment can open its
// secrets (New unwraps them), so a failure here is never a single damaged
// key holding a rotation up; a damaged tenant key is reported at the end.
func checkOpens(ctx context.Context, kms currentKMS, keys lethe.KeyRewrapper) error {
	page, err := keys.StaleWrappedKeys(ctx, kms.CurrentID(), lethe.StaleKey{}, rewrapBatch)
	if err != nil {
		return err
	}
	for _, k := range page {
		if k.Kind != lethe.StaleSecret {
			break // secrets are listed first
		}
		if _, err := kms.Unwrap(ctx, k.Wrapped, k.KEKID, masterAD(k)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the keyring cannot open the key store's secret %s (%w): is it this deployment's master key?", k.Name, err)
		}
	}
	return nil
}

// masterAD returns the associated data the vault binds a key the master
// key wraps to (see Service.secret and Service.openTenantKey; every version
// of a tenant's key has the same), nil for an unknown kind.
func masterAD(k lethe.StaleKey) []byte {
	switch k.Kind {
	case lethe.StaleSecret:
		return AD("secret", k.Name)
	case lethe.StaleTenantKey:
		return AD("tenant-key", k.Name)
	}
	return nil
}

// currentKMS is a KMS that names its current key; LocalKMS is one.
type currentKMS interface {
	KMS
	CurrentID() string
}

// rewrap moves every stale key to kms's current key in one pass over the
// key store, then counts what is still stale.
func rewrap(ctx context.Context, kms currentKMS, keys lethe.KeyRewrapper, progress func(done, total int)) (Rotation, error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	r := Rotation{KEKID: kms.CurrentID()}
	total, err := keys.CountStaleWrappedKeys(ctx, r.KEKID)
	if err != nil {
		return r, err
	}
	progress(0, total)
	var failed []string // "kind name: reason", for the error
	done := 0
	// The cursor moves past every key listed, rewrapped or not, so that a
	// key that cannot be opened is tried once, not on every page.
	var after lethe.StaleKey
	for {
		page, err := keys.StaleWrappedKeys(ctx, r.KEKID, after, rewrapBatch)
		if err != nil {
			return r, err
		}
		if len(page) == 0 {
			break
		}
		for _, k := range page {
			after = k
			ok, err := rewrapKey(ctx, kms, keys, k)
			var open *openError
			switch {
			case errors.As(err, &open):
				failed = append(failed, open.Error())
			case err != nil:
				return r, err
			case ok:
				r.Rewrapped++
			default:
				r.Skipped++
			}
			done++
			total = max(total, done)
			progress(done, total)
		}
	}
	// Count against the current key now: if another rotation made a newer
	// one meanwhile, keys moved to it are not stale.
	left, err := keys.CountStaleWrappedKeys(ctx, kms.CurrentID())
	if err != nil {
		return r, err
	}
	switch {
	case len(failed) > 0:
		n, more := len(failed), ""
		if n > maxReportedFailures {
			more = fmt.Sprintf("; and %d more", n-maxReportedFailures)
			failed = failed[:maxReportedFailures]
		}
		return r, fmt.Errorf("%d keys could not be opened and are still wrapped under an older master key: %s%s", n, strings.Join(failed, "; "), more)
	case left > 0:
		return r, fmt.Errorf("%d keys are still wrapped under an older master key, made meanwhile by an instance that has not loaded the new keyring; once every instance has it, run the rewrap again", left)
	}
	return r, nil
}

// openError is a key that could not be unwrapped with the key its ID
// names. It stops the rewrap of that key only, not of the others.
type openError struct {
	kind, name, kekID string
	err               error
}

func (e *openError) Error() string {
	return fmt.Sprintf("%s %s under %s: %v", e.kind, e.name, e.kekID, e.err)
}

// staleKeyName names k in errors: a secret by its name, a version of a
// tenant's key by its tenant and version.
func staleKeyName(k lethe.StaleKey) string {
	if k.Kind == lethe.StaleTenantKey {
		return fmt.Sprintf("%s v%d", k.Name, k.Version)
	}
	return k.Name
}

func (e *openError) Unwrap() error { return e.err }

// rewrapKey moves k to kms's current key. It reports false, with no error,
// when k was erased or changed meanwhile: then there is nothing left for
// it to do (a changed key was rewrapped by someone else, and if it is still
// stale the final count says so).
func rewrapKey(ctx context.Context, kms KMS, keys lethe.KeyRewrapper, k lethe.StaleKey) (bool, error) {
	ad := masterAD(k)
	if ad == nil {
		return false, &openError{k.Kind, staleKeyName(k), k.KEKID, errors.New("unknown kind of key")}
	}
	key, err := kms.Unwrap(ctx, k.Wrapped, k.KEKID, ad)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, &openError{k.Kind, staleKeyName(k), k.KEKID, err}
	}
	defer clear(key[:])
	wrapped, kekID, err := kms.Wrap(ctx, key, ad)
	if err != nil {
		return false, fmt.Errorf("wrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	err = keys.RewrapKey(ctx, k, wrapped, kekID)
	switch lethe.ErrorCode(err) {
	case "":
		return true, nil
	case lethe.ENOTFOUND, lethe.ECONFLICT:
		return false, nil
	}
	return false, fmt.Errorf("store rewrapped %s %s: %w", k.Kind, staleKeyName(k), err)
}

// rotateBatch is how many subject keys one page of a tenant-key rotation
// lists and rewraps, in one key-store transaction.
const rotateBatch = 500

// TenantKeyStore is what RotateTenantKey needs of a key store: the
// versions of a tenant's key, and the lethe.TenantKeyRotator capability.
// Both stores implement it.
type TenantKeyStore interface {
	TenantKey(ctx context.Context, tenant string) (*lethe.WrappedKey, error)
	TenantKeyVersion(ctx context.Context, tenant string, version int) (*lethe.WrappedKey, error)
	lethe.TenantKeyRotator
}

// TenantRotation reports what RotateTenantKey did, also when it failed part
// way.
type TenantRotation struct {
	Tenant string
	// Version is the version of the tenant's key the subject keys were
	// rewrapped under: the one this call added or, when it finished an
	// interrupted rotation, the current one; 0 if it failed before either.
	Version int
	// Resumed reports that this call finished an interrupted rotation
	// rather than adding a version.
	Resumed bool
	// Rewrapped counts the subject keys this call moved to Version.
	Rewrapped int
	// Skipped counts the subject keys that were erased, or rewrapped by
	// another process, between being listed and being rewrapped.
	Skipped int
	// Deleted counts the older versions of the tenant's key deleted at the
	// end.
	Deleted int
}

// RotateTenantKey rotates tenant's key-encryption key while the vault
// serves. It adds version N+1 of the tenant's key (N the current version):
// a new random key, wrapped by kms bound to the tenant, as every version
// is. From then on the key store lets new subject keys of the tenant be
// stored under N+1 only, and a Service still wrapping under N reads the
// current version again and retries. Then it moves every subject key of
// the tenant wrapped under an older version to N+1: it unwraps the subject
// key with the old version and wraps the same key under the new one, a
// page at a time, each key a compare-and-swap, skipping keys erased or
// rewrapped meanwhile. Last it deletes the older versions, which the key
// store allows only once no subject key uses them. Subject keys keep their
// bytes, so no sealed value is re-encrypted, and a Service that holds them
// unwrapped keeps using them; a Service reading a subject key finds in its
// KEKID which version opens it.
//
// An interrupted rotation leaves the tenant with version N+1 current and
// older versions still stored, every key under one of them, all readable;
// running RotateTenantKey again finishes it: when the version before the
// current one is still stored, it adds no version, only rewraps what is
// left and deletes the older versions (Resumed is then set). Run once
// more, it rotates again.
//
// It fails, changing nothing, for a tenant that was erased (EGONE) or has
// no key yet (ENOTFOUND: it has no subjects), or if kms cannot open the
// tenant's current key (the master key of another deployment). If another
// rotation of the same tenant adds a version first, it fails with
// ECONFLICT; running it again once the other is done finishes whatever is
// left. Subject keys that cannot be opened are left as they are and the
// older versions kept; the error names the subjects (IDs only). Its
// errors never carry key material. progress, if not nil, is called once
// with 0 and the number of keys to rewrap, then after each page with how
// many have been handled and how many there are (a total that may grow).
// The TenantRotation it returns is filled as far as it got.
func RotateTenantKey(ctx context.Context, kms KMS, keys TenantKeyStore, tenant string, progress func(done, total int)) (TenantRotation, error) {
	r := TenantRotation{Tenant: tenant}
	if err := lethe.ValidTenant(tenant); err != nil {
		return r, err
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	ad := AD("tenant-key", tenant)
	cur, err := keys.TenantKey(ctx, tenant)
	switch lethe.ErrorCode(err) {
	case "":
	case lethe.ENOTFOUND:
		return r, lethe.Errorf(lethe.ENOTFOUND, "tenant %s has no key yet (it has no subjects): there is nothing to rotate", tenant)
	default:
		return r, fmt.Errorf("rotate key of tenant %s: %w", tenant, err)
	}
	curKey, err := kms.Unwrap(ctx, cur.Wrapped, cur.KEKID, ad)
	if err != nil {
		return r, fmt.Errorf("rotate key of tenant %s: the master key cannot open its version %d (%w): is it this deployment's master key?", tenant, cur.Version, err)
	}
	defer clear(curKey[:])
	resume := false
	if cur.Version > 1 {
		_, err := keys.TenantKeyVersion(ctx, tenant, cur.Version-1)
		switch lethe.ErrorCode(err) {
		case "":
			resume = true
		case lethe.ENOTFOUND:
		default:
			return r, fmt.Errorf("rotate key of tenant %s: %w", tenant, err)
		}
	}
	newKey := curKey
	defer clear(newKey[:])
	if resume {
		r.Version, r.Resumed = cur.Version, true
	} else {
		newKey = NewKey()
		wrapped, kekID, err := kms.Wrap(ctx, newKey, ad)
		if err != nil {
			return r, fmt.Errorf("rotate key of tenant %s: wrap version %d: %w", tenant, cur.Version+1, err)
		}
		err = keys.AddTenantKeyVersion(ctx, tenant, &lethe.WrappedKey{Wrapped: wrapped, KEKID: kekID, Version: cur.Version + 1, CreatedAt: time.Now().UTC()})
		if lethe.ErrorCode(err) == lethe.ECONFLICT {
			return r, lethe.Errorf(lethe.ECONFLICT, "another rotation of tenant %s's key added version %d first; once it is done, run the rotation again to finish whatever it left", tenant, cur.Version+1)
		} else if err != nil {
			return r, fmt.Errorf("rotate key of tenant %s: add version %d: %w", tenant, cur.Version+1, err)
		}
		r.Version = cur.Version + 1
	}
	if err := rewrapSubjectKeys(ctx, kms, keys, tenant, &newKey, &r, progress); err != nil {
		return r, fmt.Errorf("rotate key of tenant %s to version %d, unfinished (run the rotation again to finish it): %w", tenant, r.Version, err)
	}
	r.Deleted, err = keys.DeleteTenantKeysBefore(ctx, tenant, r.Version)
	if err != nil {
		return r, fmt.Errorf("rotate key of tenant %s to version %d: every subject key was rewrapped, but the older versions could not be deleted (run the rotation again to finish it): %w", tenant, r.Version, err)
	}
	return r, nil
}

// rewrapSubjectKeys moves every subject key of the tenant not under
// r.Version, which newKey is, to it, in one pass over the key store, then
// counts what is still under an older version.
func rewrapSubjectKeys(ctx context.Context, kms KMS, keys TenantKeyStore, tenant string, newKey *Key, r *TenantRotation, progress func(done, total int)) error {
	total, err := keys.CountStaleSubjectKeys(ctx, tenant, r.Version)
	if err != nil {
		return err
	}
	progress(0, total)
	older := map[int]*Key{} // older versions of the tenant's key, unwrapped
	defer func() {
		for _, k := range older {
			clear(k[:])
		}
	}()
	openVersion := func(version int) (*Key, error) {
		if k, ok := older[version]; ok {
			return k, nil
		}
		w, err := keys.TenantKeyVersion(ctx, tenant, version)
		if err != nil {
			return nil, err
		}
		k, err := kms.Unwrap(ctx, w.Wrapped, w.KEKID, AD("tenant-key", tenant))
		if err != nil {
			return nil, err
		}
		older[version] = &k
		return &k, nil
	}
	var failed []string // "subject: reason", for the error
	done := 0
	// The cursor moves past every key listed, rewrapped or not, so that a
	// key that cannot be opened is tried once, not on every page.
	after := ""
	for {
		page, err := keys.StaleSubjectKeys(ctx, tenant, r.Version, after, rotateBatch)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].SubjectID
		rewraps := make([]lethe.SubjectKeyRewrap, 0, len(page))
		for _, k := range page {
			ad := AD("subject-key", tenant, k.SubjectID)
			kekTenant, version, ok := lethe.ParseTenantKEKID(k.KEKID)
			if !ok || kekTenant != tenant {
				failed = append(failed, fmt.Sprintf("subject %s: wrapped under %q, not a version of the tenant's key", k.SubjectID, k.KEKID))
				continue
			}
			tk, err := openVersion(version)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failed = append(failed, fmt.Sprintf("subject %s: version %d of the tenant's key: %v", k.SubjectID, version, err))
				continue
			}
			dek, err := UnwrapKey(tk, k.Wrapped, ad)
			if err != nil {
				failed = append(failed, fmt.Sprintf("subject %s: %v", k.SubjectID, err))
				continue
			}
			rewraps = append(rewraps, lethe.SubjectKeyRewrap{Old: k, NewWrapped: WrapKey(newKey, dek, ad)})
			clear(dek[:])
		}
		results, err := keys.RewrapSubjectKeys(ctx, tenant, r.Version, rewraps)
		if errors.Is(err, lethe.ErrStaleTenantKey) {
			return lethe.Errorf(lethe.ECONFLICT, "another rotation added a newer version of tenant %s's key meanwhile", tenant)
		} else if err != nil {
			return err
		}
		for i, err := range results {
			switch lethe.ErrorCode(err) {
			case "":
				r.Rewrapped++
			case lethe.ENOTFOUND, lethe.ECONFLICT:
				r.Skipped++ // erased, or rewrapped by another process
			default:
				return fmt.Errorf("subject %s: %w", rewraps[i].Old.SubjectID, err)
			}
		}
		done += len(page)
		total = max(total, done)
		progress(done, total)
	}
	left, err := keys.CountStaleSubjectKeys(ctx, tenant, r.Version)
	if err != nil {
		return err
	}
	switch {
	case len(failed) > 0:
		n, more := len(failed), ""
		if n > maxReportedFailures {
			more = fmt.Sprintf("; and %d more", n-maxReportedFailures)
			failed = failed[:maxReportedFailures]
		}
		return fmt.Errorf("%d subject keys could not be opened and are still wrapped under an older version: %s%s", n, strings.Join(failed, "; "), more)
	case left > 0:
		return fmt.Errorf("%d subject keys are still wrapped under an older version", left)
	}
	return nil
}
