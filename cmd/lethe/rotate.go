package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/postgres"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

const rotateMasterHelp = `Usage: lethe keys rotate-master [--data-dir DIR] [--key-store DSN] [--rewrap-only]

Rotates the master key. It adds a new current key to the keyring DIR/master.key,
keeping the old keys, then rewraps every tenant key (every version of it) and
deployment secret of the key store under the new key, each with a
compare-and-swap. Subject keys and sealed data are not touched: it costs one
unwrap and one wrap per tenant. (To re-key a tenant, rotating the key its
subject keys are wrapped under, use 'lethe keys rotate-tenant'.)

It works directly on the data directory and the key store, and may run while
the deployment's server is running on that data directory: the server notices
the new master.key and uses it without a restart. Other running instances (on
other machines, or with another copy of master.key) must be given the new
master.key and restarted to load the new keyring; until then they cannot open
keys rewrapped under the new key, so stop them first if they cannot be updated
at once.

If it is interrupted, or reports keys still under an old key, run it again
with --rewrap-only, which rewraps what is left without adding another key.

Back up master.key again afterwards, apart from the key store's backups: a
backup of the old file cannot open keys wrapped under the new key. The old keys
stay in the file, so key-store backups taken before the rotation still open.

A master key given in LETHE_MASTER_KEY cannot be rotated.

Flags:
`

// rotateMaster implements "lethe keys rotate-master".
func (m *Main) rotateMaster(ctx context.Context, args []string) error {
	fset := m.commandFlags("keys rotate-master", rotateMasterHelp)
	where := m.bindKeyAdminFlags(fset)
	rewrapOnly := fset.Bool("rewrap-only", false, "add no key: only rewrap the keys not under the current master key (finishes an interrupted rotation)")
	if err := parse(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fset.Arg(0))
	}
	if m.Getenv("LETHE_MASTER_KEY") != "" {
		return errors.New("the master key comes from LETHE_MASTER_KEY, which holds one key and cannot be rotated; a deployment that must rotate its master key keeps it in master.key in the data directory")
	}
	cfg, err := m.keyAdminConfig(fset, where)
	if err != nil {
		return err
	}

	path := filepath.Join(cfg.DataDir, "master.key")
	// Never make a keyring here: a new one would open nothing.
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no master key at %s: give the data directory of the deployment (--data-dir)", path)
	} else if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	kms, _, err := vault.OpenLocalKMS(path, "")
	if err != nil {
		return fmt.Errorf("open master key: %w", err)
	}
	keys, closeKeys, err := openKeyStore(ctx, cfg.KeyStore)
	if err != nil {
		return err
	}
	defer closeKeys()

	progress := progressPrinter(m.Stderr)
	var r vault.Rotation
	if *rewrapOnly {
		r, err = vault.RewrapStale(ctx, kms, keys, progress)
	} else {
		r, err = vault.RotateMaster(ctx, kms, path, keys, progress)
	}
	if err != nil {
		if !*rewrapOnly && r.KEKID != "" {
			return fmt.Errorf("%w\nThe keyring's current key is now %s: back up %s again, and run 'lethe keys rotate-master --rewrap-only' to finish", err, r.KEKID, path)
		}
		return err
	}
	skipped := ""
	if r.Skipped > 0 {
		skipped = fmt.Sprintf(" (%d skipped: erased or rewrapped by another process meanwhile)", r.Skipped)
	}
	if *rewrapOnly {
		fmt.Fprintf(m.Stdout, "Rewrapped %d keys under the current master key %s%s; none is left under an older key.\n", r.Rewrapped, r.KEKID, skipped)
		return nil
	}
	fmt.Fprintf(m.Stdout, "Rotated the master key: %s is now current in %s, and %d keys were rewrapped under it%s.\n", r.KEKID, path, r.Rewrapped, skipped)
	fmt.Fprintf(m.Stdout, "Back up %s again now, apart from the key store's backups. Instances that do not read this file must get the new one and be restarted.\n", path)
	return nil
}

// keyAdminFlags are where the key commands find the deployment: its data
// directory (with master.key) and its key store.
type keyAdminFlags struct{ dataDir, keyStore string }

// bindKeyAdminFlags defines --data-dir and --key-store on fset, defaulting
// to LETHE_DATA_DIR and LETHE_KEY_STORE as serve does.
func (m *Main) bindKeyAdminFlags(fset *flag.FlagSet) *keyAdminFlags {
	f := &keyAdminFlags{dataDir: m.Getenv("LETHE_DATA_DIR"), keyStore: m.Getenv("LETHE_KEY_STORE")}
	if f.dataDir == "" {
		f.dataDir = DefaultConfig().DataDir
	}
	fset.StringVar(&f.dataDir, "data-dir", f.dataDir, "data directory holding master.key (env LETHE_DATA_DIR)")
	fset.StringVar(&f.keyStore, "key-store", f.keyStore, "key store: empty for keys.db in the data directory, a file path, or a postgres:// URL without a password (env LETHE_KEY_STORE)")
	return f
}

// keyAdminConfig returns the config of a key command, parsed from fset:
// it runs the same checks as serve (a password never in a flag, a key
// store apart from a PostgreSQL data store) and fills in keys.db in the
// data directory for an empty key store.
func (m *Main) keyAdminConfig(fset *flag.FlagSet, f *keyAdminFlags) (Config, error) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KeyStore, cfg.Store = f.dataDir, f.keyStore, m.Getenv("LETHE_STORE")
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := cfg.Validate(set); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// keyStoreAdmin is what the admin commands need of a key store: rewrapping
// keys, rotating tenant keys and reading the audit log's anchored
// checkpoint.
type keyStoreAdmin interface {
	lethe.KeyRewrapper
	vault.TenantKeyStore
	lethe.CheckpointStore
}

// openKeyStore opens the key store at dsn (a SQLite file, which must
// exist, or a postgres:// URL) for an admin command and returns it with its
// closer.
func openKeyStore(ctx context.Context, dsn string) (keyStoreAdmin, func(), error) {
	if isPostgresURL(dsn) {
		db, err := postgres.OpenKeys(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("open key store (PostgreSQL): %w", err)
		}
		return postgres.NewKeyStore(db), func() { db.Close() }, nil
	}
	// Opening a missing file would make an empty key store.
	if _, err := os.Stat(dsn); err != nil {
		return nil, nil, fmt.Errorf("open key store: %w", err)
	}
	db, err := sqlite.OpenKeys(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("open key store: %w", err)
	}
	return sqlite.NewKeyStore(db), func() { db.Close() }, nil
}

// progressPrinter returns a progress function printing "rewrapped 3/5" to
// w, at most once a second and always for the last key.
func progressPrinter(w io.Writer) func(done, total int) {
	return keyProgressPrinter(w, "keys")
}

// keyProgressPrinter is progressPrinter naming the keys (such as "subject
// keys") in its first line.
func keyProgressPrinter(w io.Writer, what string) func(done, total int) {
	var last time.Time
	return func(done, total int) {
		switch {
		case done == 0 && total == 0:
			fmt.Fprintf(w, "no %s to rewrap\n", what)
		case done == 0:
			fmt.Fprintf(w, "%d %s to rewrap\n", total, what)
		case done == total || time.Since(last) >= time.Second:
			fmt.Fprintf(w, "rewrapped %d/%d\n", done, total)
			last = time.Now()
		}
	}
}
