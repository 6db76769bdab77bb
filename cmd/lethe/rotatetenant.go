package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/vault"
)

const rotateTenantHelp = `Usage: lethe keys rotate-tenant --tenant T [--data-dir DIR] [--key-store DSN]

Rotates a tenant's key-encryption key. It adds a new version of the tenant's
key (a new random key, wrapped by the master key), which from then on is the
only version new subject keys of the tenant are wrapped under; then it
rewraps every subject key of the tenant under it, each with a
compare-and-swap, and last deletes the older versions of the tenant's key.
Subject keys keep their value, so no sealed data is re-encrypted: it costs
one unwrap and one wrap per subject of the tenant.

It works directly on the key store, with the master key in DIR/master.key
(or LETHE_MASTER_KEY), and may run while servers are running on that key
store, which keep serving: within a second they wrap new subject keys under
the new version, and they open every subject key under whichever version
wraps it. Every running instance must be of a release that knows tenant-key
versions.

If it is interrupted or fails part way, every key is still readable: run it
again, which finishes the rotation (it adds no further version while older
ones are left). Run once more, it rotates the tenant's key again.

Flags:
`

// rotateTenant implements "lethe keys rotate-tenant".
func (m *Main) rotateTenant(ctx context.Context, args []string) error {
	fset := m.commandFlags("keys rotate-tenant", rotateTenantHelp)
	where := m.bindKeyAdminFlags(fset)
	tenant := fset.String("tenant", "", "the tenant whose key to rotate (required)")
	if err := parse(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fset.Arg(0))
	}
	if *tenant == "" {
		return usageErrorf("keys rotate-tenant needs --tenant")
	}
	if err := lethe.ValidTenant(*tenant); err != nil {
		return usageErrorf("--tenant: %s", lethe.ErrorMessage(err))
	}
	cfg, err := m.keyAdminConfig(fset, where)
	if err != nil {
		return err
	}

	// The master key only wraps the new version here, so one from
	// LETHE_MASTER_KEY serves as well as the keyring file; never make a
	// keyring, which would open nothing.
	env, path := m.Getenv("LETHE_MASTER_KEY"), filepath.Join(cfg.DataDir, "master.key")
	if env == "" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no master key at %s: give the data directory of the deployment (--data-dir), or set LETHE_MASTER_KEY", path)
		} else if err != nil {
			return fmt.Errorf("master key: %w", err)
		}
	}
	kms, _, err := vault.OpenLocalKMS(path, env)
	if err != nil {
		return fmt.Errorf("open master key: %w", err)
	}
	keys, closeKeys, err := openKeyStore(ctx, cfg.KeyStore)
	if err != nil {
		return err
	}
	defer closeKeys()

	r, err := vault.RotateTenantKey(ctx, kms, keys, *tenant, keyProgressPrinter(m.Stderr, "subject keys"))
	if err != nil {
		return err
	}
	skipped := ""
	if r.Skipped > 0 {
		skipped = fmt.Sprintf(" (%d skipped: erased or rewrapped by another process meanwhile)", r.Skipped)
	}
	verb := "Rotated"
	if r.Resumed {
		verb = "Finished rotating"
	}
	fmt.Fprintf(m.Stdout, "%s the key of tenant %s: version %d is current, %d subject keys were rewrapped under it%s, and %d older versions were deleted.\n",
		verb, r.Tenant, r.Version, r.Rewrapped, skipped, r.Deleted)
	return nil
}
