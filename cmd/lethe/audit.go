package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/postgres"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// auditSecret names the audit log's checkpoint signing seed in the key
// store, wrapped under the master key like the vault's root secrets.
const auditSecret = "audit-checkpoint-signing"

// verifierKeyFile is the public key that checks the log's checkpoints,
// written into the log's directory for convenience. An auditor should keep
// a copy elsewhere and pass it to 'lethe audit verify --key'.
const verifierKeyFile = "verifier.key"

func auditDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// auditLog is what the server needs of its audit log, in either form: the
// files of one instance (SQLite) or the log every instance on a PostgreSQL
// data store shares.
type auditLog interface {
	lethe.Auditor
	lethe.AuditTrail
	lethe.Pinger
	Prune(ctx context.Context, before time.Time) (uint64, error)
	Close() error
}

// auditOrigin returns the name of the audit log in this data directory, as
// its checkpoints carry it, making it on first use: the deployment's log,
// or, for a log started anew after damage (--audit-start-new-log), a log
// with a name of its own.
func auditOrigin(cfg Config, deployment string, anew bool) (string, error) {
	base := "lethe.audit/" + deployment
	path := filepath.Join(auditDir(cfg.DataDir), "origin")
	b, err := os.ReadFile(path)
	if err == nil {
		origin := strings.TrimSpace(string(b))
		if origin != base && !(strings.HasPrefix(origin, base+"/") && instanceRE.MatchString(origin[len(base)+1:])) {
			return "", fmt.Errorf("the audit log in %s is %q, not a log of deployment %s", auditDir(cfg.DataDir), origin, deployment)
		}
		return origin, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	origin := base
	if anew {
		r := make([]byte, 6)
		rand.Read(r)
		origin += "/i" + hex.EncodeToString(r)
	}
	if err := os.MkdirAll(auditDir(cfg.DataDir), 0o700); err != nil {
		return "", err
	}
	return origin, os.WriteFile(path, []byte(origin+"\n"), 0o600)
}

var instanceRE = regexp.MustCompile(`^i[0-9a-f]{12}$`)

// sharedOrigin names epoch n of a deployment's shared log.
func sharedOrigin(deployment string, epoch int) string {
	if epoch == 1 {
		return "lethe.audit/" + deployment
	}
	return fmt.Sprintf("lethe.audit/%s/e%d", deployment, epoch)
}

// openAudit opens the deployment's audit log, signing its checkpoints with
// the key kept in the key store. It writes the verifier key into the data
// directory and reports whether it changed (so serve can print it).
func openAudit(ctx context.Context, cfg Config, st *stores, kms vault.KMS, log *slog.Logger) (auditLog, string, bool, error) {
	seed, err := vault.DeploymentSecret(ctx, st.keyStore, kms, auditSecret, nil)
	if err != nil {
		return nil, "", false, fmt.Errorf("audit signing key: %w", err)
	}
	opts := audit.Options{Anchor: st.checkpoints, Logger: log}
	for _, p := range cfg.auditPublish() {
		if strings.HasPrefix(p, "https://") {
			opts.Publish = append(opts.Publish, audit.WebhookPublisher{URL: p})
		} else {
			opts.Publish = append(opts.Publish, audit.FilePublisher{Path: p})
		}
	}
	dir := auditDir(cfg.DataDir)
	var vkey string
	// sign names the log origin and makes its signer.
	sign := func(origin string) error {
		opts.Origin = origin
		opts.Signer, vkey, err = audit.NewSigner(origin, seed[:])
		return err
	}
	var l auditLog
	var startAnew func() error // moves the damaged log aside and opens a new one
	if st.sharedAudit != nil {
		shared := st.sharedAudit
		open := func() error {
			if err := sign(sharedOrigin(st.deployment, shared.Epoch())); err != nil {
				return err
			}
			sl, err := audit.OpenShared(ctx, shared, opts)
			if err == nil {
				l = sl
			}
			return err
		}
		err = open()
		startAnew = func() error {
			if shared, err = shared.NewEpoch(ctx); err != nil {
				return err
			}
			return open()
		}
	} else {
		open := func(anew bool) error {
			origin, err := auditOrigin(cfg, st.deployment, anew)
			if err != nil {
				return fmt.Errorf("audit log name: %w", err)
			}
			if err := sign(origin); err != nil {
				return err
			}
			fl, err := audit.Open(ctx, dir, opts)
			if err == nil {
				l = fl
			}
			return err
		}
		err = open(false)
		startAnew = func() error {
			kept := dir + ".abandoned-" + time.Now().UTC().Format("20060102T150405Z")
			if err := os.Rename(dir, kept); err != nil {
				return fmt.Errorf("move the damaged audit log aside: %w", err)
			}
			log.Warn("damaged audit log kept aside", "kept_at", kept)
			return open(true)
		}
	}
	if errors.Is(err, audit.ErrDamaged) && cfg.AuditStartNewLog {
		// Keep the damaged log as evidence, start a new one under a new
		// name, and say so in its first event. The old log's anchor stays
		// in the key store: it proves that a log of that size existed.
		log.Warn("audit log damaged or rolled back: starting a new log (--audit-start-new-log)", "err", err.Error())
		old := opts.Origin
		if err = startAnew(); err == nil {
			err = l.Record(ctx, lethe.AuditEvent{Time: time.Now().UTC(), Action: "audit.new_log", Outcome: "ok", Resource: "audit:abandoned/" + old})
		}
	}
	if err != nil {
		if l != nil {
			l.Close()
		}
		if errors.Is(err, audit.ErrDamaged) {
			err = fmt.Errorf("%w\nLethe will not write to an audit log whose history it cannot prove. Run 'lethe audit verify' to see what is wrong; restore a complete copy of the log, or start with --audit-start-new-log to keep this one aside as evidence and begin a new log", err)
		}
		return nil, "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.Close()
		return nil, "", false, err
	}
	path := filepath.Join(dir, verifierKeyFile)
	prev, err := os.ReadFile(path)
	fresh := errors.Is(err, fs.ErrNotExist) || strings.TrimSpace(string(prev)) != vkey
	if fresh {
		if err := os.WriteFile(path, []byte(vkey+"\n"), 0o644); err != nil {
			l.Close()
			return nil, "", false, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return l, vkey, fresh, nil
}

// pruneAudit removes audit segments older than the retention, hourly,
// until ctx is done.
func pruneAudit(ctx context.Context, l auditLog, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := l.Prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Error("audit prune failed", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const auditHelp = `Usage:
  lethe audit verify [--data-dir DIR] [--key KEY] [--checkpoint FILE]... [--json]
  lethe audit export --subject ID [--tenant T] [--data-dir DIR] [--key KEY] [--out FILE]
  lethe audit verify-proof --key KEY [FILE]
  lethe audit key [--data-dir DIR]

verify recomputes the audit log's Merkle tree from its events and checks it
against every signed checkpoint: those beside the log, the one the key store
keeps, and any copies given with --checkpoint (kept outside this machine).
It prints the first bad index and what is wrong, and exits 1 if anything is.

export writes a subject's events with inclusion proofs against the newest
signed checkpoint, as JSON that verify-proof (or anyone with the verifier
key) checks offline. GET /v1/audit?subject=ID answers the same.

KEY is the log's verifier key ("lethe.audit/dep_…+hash+key", as 'lethe audit
key' prints it) or a file holding it. Without --key, verify and export use
the copy in the data directory, which the machine's operator could replace:
an auditor passes a copy kept elsewhere.
`

func (m *Main) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("audit needs a subcommand: verify, export, verify-proof or key\n\n%s", auditHelp)
	}
	fset := m.commandFlags("audit "+args[0], auditHelp)
	dataDir, keyStore := m.Getenv("LETHE_DATA_DIR"), m.Getenv("LETHE_KEY_STORE")
	if dataDir == "" {
		dataDir = DefaultConfig().DataDir
	}
	fset.StringVar(&dataDir, "data-dir", dataDir, "data directory holding the audit log (env LETHE_DATA_DIR)")
	dataStore := m.Getenv("LETHE_STORE")
	fset.StringVar(&dataStore, "store", dataStore, "data store: empty for the log in the data directory (SQLite), or the postgres:// URL of a data store whose instances share one log (env LETHE_STORE)")
	key := fset.String("key", "", "verifier key, or a file holding it (default: the copy in the data directory)")
	switch args[0] {
	case "verify":
		fset.StringVar(&keyStore, "key-store", keyStore, "key store whose anchored checkpoint to check against: empty for keys.db in the data directory, a file path, or a postgres:// URL (env LETHE_KEY_STORE)")
		var external multiFlag
		fset.Var(&external, "checkpoint", "a checkpoint kept outside Lethe (a file); repeatable")
		asJSON := fset.Bool("json", false, "print the report as JSON")
		if err := parse(fset, args[1:]); err != nil {
			return err
		}
		return m.auditVerify(ctx, dataDir, dataStore, keyStore, *key, external, *asJSON)
	case "export":
		subject := fset.String("subject", "", "subject ID (sub_…)")
		tenant := fset.String("tenant", "", "tenant of the subject (default: any)")
		out := fset.String("out", "", "write the bundle to this file (default: standard output)")
		if err := parse(fset, args[1:]); err != nil {
			return err
		}
		return m.auditExport(ctx, dataDir, dataStore, *key, *subject, *tenant, *out)
	case "verify-proof":
		if err := parse(fset, args[1:]); err != nil {
			return err
		}
		if *key == "" {
			return usageErrorf("verify-proof needs --key: the verifier key you trust, not one that came with the bundle")
		}
		return m.auditVerifyProof(*key, fset.Args())
	case "key":
		if err := parse(fset, args[1:]); err != nil {
			return err
		}
		_, vkey, err := loadVerifier(dataDir, "")
		if err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, vkey)
		return nil
	}
	return usageErrorf("unknown audit subcommand %q\n\n%s", args[0], auditHelp)
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (f *multiFlag) String() string     { return strings.Join(*f, ",") }
func (f *multiFlag) Set(v string) error { *f = append(*f, v); return nil }

// loadVerifier returns the verifier for key (a key or a file holding one),
// or for the copy in the data directory when key is empty.
func loadVerifier(dataDir, key string) (note.Verifier, string, error) {
	vkey := key
	if key == "" || !strings.Contains(key, "+") {
		path := key
		if path == "" {
			path = filepath.Join(auditDir(dataDir), verifierKeyFile)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("read verifier key: %w", err)
		}
		vkey = strings.TrimSpace(string(b))
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", usageErrorf("not a verifier key (want NAME+HASH+KEY): %v", err)
	}
	return v, vkey, nil
}

// openAuditSource opens the audit log to read: the files in the data
// directory, or the shared log in a PostgreSQL data store, at the epoch
// the verifier's log name gives.
func openAuditSource(ctx context.Context, dataDir, dataStore string, v note.Verifier) (audit.Source, func(), error) {
	if !isPostgresURL(dataStore) {
		dir := auditDir(dataDir)
		if _, err := os.Stat(filepath.Join(dir, "entries")); err != nil {
			return nil, nil, fmt.Errorf("no audit log in %s: %w", dir, err)
		}
		return audit.DirSource(dir), func() {}, nil
	}
	epoch := 1
	if m := epochRE.FindStringSubmatch(v.Name()); m != nil {
		epoch, _ = strconv.Atoi(m[1])
	}
	db, err := postgres.OpenData(ctx, dataStore)
	if err != nil {
		return nil, nil, fmt.Errorf("open data store (PostgreSQL): %w", err)
	}
	st, err := postgres.OpenAuditLog(ctx, db, epoch)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return st, func() { db.Close() }, nil
}

var epochRE = regexp.MustCompile(`/e([0-9]+)$`)

func (m *Main) auditVerify(ctx context.Context, dataDir, dataStore, keyStore, key string, external []string, asJSON bool) error {
	v, _, err := loadVerifier(dataDir, key)
	if err != nil {
		return err
	}
	if key == "" {
		fmt.Fprintln(m.Stderr, "note: checking against the verifier key in the data directory; pass --key with a copy kept elsewhere so as not to trust this machine")
	}
	trusted := map[string][]byte{}
	for _, path := range external {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		trusted["checkpoint "+path] = b
	}
	if keyStore == "" {
		keyStore = filepath.Join(dataDir, "keys.db")
	}
	ks, closeKS, err := openKeyStore(ctx, keyStore)
	if err != nil {
		return err
	}
	_, anchored, err := ks.LatestCheckpoint(ctx, v.Name())
	closeKS()
	switch lethe.ErrorCode(err) {
	case "":
		trusted["the key store's checkpoint"] = anchored
	case lethe.ENOTFOUND:
		fmt.Fprintln(m.Stderr, "note: the key store holds no checkpoint for this log")
	default:
		return fmt.Errorf("read the key store's checkpoint: %w", err)
	}
	src, closeSrc, err := openAuditSource(ctx, dataDir, dataStore, v)
	if err != nil {
		return err
	}
	defer closeSrc()
	start := time.Now()
	r, err := audit.VerifySource(ctx, src, audit.VerifyOptions{
		Origin: v.Name(), Verifier: v, Trusted: trusted,
		Progress: func(n uint64) { fmt.Fprintf(m.Stderr, "read %d events\n", n) },
	})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if r.OK() {
		fmt.Fprintf(m.Stdout, "OK: %d events", r.Entries-r.Pruned)
		if r.Pruned > 0 {
			fmt.Fprintf(m.Stdout, " (the %d before them pruned; their tree hashes checked)", r.Pruned)
		}
		fmt.Fprintf(m.Stdout, " match %d signed checkpoints; the newest covers %d entries", r.Checkpoints, r.Sealed)
		if r.Entries > r.Sealed {
			fmt.Fprintf(m.Stdout, ", %d newer entries await the next checkpoint", r.Entries-r.Sealed)
		}
		fmt.Fprintf(m.Stdout, ". (%.1f s)\n", time.Since(start).Seconds())
	} else {
		fmt.Fprintf(m.Stdout, "FAILED: the audit log does not verify (%d entries read).\n", r.Entries)
		for _, p := range r.Problems {
			if p.Index >= 0 {
				fmt.Fprintf(m.Stdout, "  at index %d: %s\n", p.Index, p.What)
			} else {
				fmt.Fprintf(m.Stdout, "  %s\n", p.What)
			}
		}
	}
	if !r.OK() {
		return errSilentFailure
	}
	return nil
}

func (m *Main) auditExport(ctx context.Context, dataDir, dataStore, key, subject, tenant, out string) error {
	if subject == "" {
		return usageErrorf("export needs --subject")
	}
	v, _, err := loadVerifier(dataDir, key)
	if err != nil {
		return err
	}
	src, closeSrc, err := openAuditSource(ctx, dataDir, dataStore, v)
	if err != nil {
		return err
	}
	defer closeSrc()
	b, err := audit.ExportSource(ctx, src, v.Name(), v, audit.Filter{Tenant: tenant, SubjectID: subject})
	if err != nil {
		return err
	}
	w := m.Stdout
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "%d events of %s, proven against the checkpoint of the newest signed tree\n", len(b.Events), subject)
	return nil
}

func (m *Main) auditVerifyProof(key string, args []string) error {
	v, _, err := loadVerifier("", key)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if len(args) > 1 {
		return usageErrorf("verify-proof takes one file")
	} else if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var b lethe.AuditBundle
	dec := json.NewDecoder(io.LimitReader(in, 1<<30))
	if err := dec.Decode(&b); err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	size, err := audit.VerifyBundle(&b, v.Name(), v)
	if err != nil {
		fmt.Fprintf(m.Stdout, "FAILED: %v\n", err)
		return errSilentFailure
	}
	fmt.Fprintf(m.Stdout, "OK: all %d events are in the audit log as signed at size %d.\n", len(b.Events), size)
	return nil
}
