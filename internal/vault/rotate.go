package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lethe-privacy/lethe"
)

// rewrapBatch is how many stale keys one page of the key store lists.
const rewrapBatch = 100

// maxReportedFailures bounds the keys named in the error of a rewrap some
// keys of which could not be opened.
const maxReportedFailures = 5

// Rotation reports what RotateMaster or RewrapStale did, also when it
// failed part way.
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
// ones; then it rewraps every deployment secret and tenant key still under
// an older master key, as RewrapStale does. Subject keys are wrapped by
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

// RewrapStale rewraps every deployment secret and tenant key that is not
// wrapped under kms's current master key: it unwraps each with the key its
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
// key wraps to (see Service.secret and Service.tenantKey), nil for an
// unknown kind.
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

func (e *openError) Unwrap() error { return e.err }

// rewrapKey moves k to kms's current key. It reports false, with no error,
// when k was erased or changed meanwhile: then there is nothing left for
// it to do (a changed key was rewrapped by someone else, and if it is still
// stale the final count says so).
func rewrapKey(ctx context.Context, kms KMS, keys lethe.KeyRewrapper, k lethe.StaleKey) (bool, error) {
	ad := masterAD(k)
	if ad == nil {
		return false, &openError{k.Kind, k.Name, k.KEKID, errors.New("unknown kind of key")}
	}
	key, err := kms.Unwrap(ctx, k.Wrapped, k.KEKID, ad)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, &openError{k.Kind, k.Name, k.KEKID, err}
	}
	defer clear(key[:])
	wrapped, kekID, err := kms.Wrap(ctx, key, ad)
	if err != nil {
		return false, fmt.Errorf("wrap %s %s: %w", k.Kind, k.Name, err)
	}
	err = keys.RewrapKey(ctx, k, wrapped, kekID)
	switch lethe.ErrorCode(err) {
	case "":
		return true, nil
	case lethe.ENOTFOUND, lethe.ECONFLICT:
		return false, nil
	}
	return false, fmt.Errorf("store rewrapped %s %s: %w", k.Kind, k.Name, err)
}
