package request_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/consent"
	"github.com/lethe-privacy/lethe/internal/jobs"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// deployment is Lethe's side of a test world, as `lethe serve` wires it:
// its stores on SQLite, the vault, the audit log, the consent ledger, the
// mail outbox, the sealing and signing keys, and, once started, the
// runner on its job queue and the request service.
type deployment struct {
	dir     string
	log     *audit.Log
	vault   *vault.Service
	consent *consent.Service
	store   *sqlite.RequestStore
	outbox  *mail.Outbox
	seal    func(p, ad []byte) []byte
	unseal  func(s, ad []byte) ([]byte, error)
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
	runner  *request.Runner
	svc     *request.Service
	qdb     *sql.DB
}

// newDeployment opens a deployment in a fresh directory, with purposes.
func newDeployment(t testing.TB, purposes []lethe.Purpose) *deployment {
	t.Helper()
	ctx := context.Background()
	d := &deployment{dir: t.TempDir()}
	data, err := sqlite.OpenData(ctx, filepath.Join(d.dir, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(ctx, filepath.Join(d.dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close(); keysDB.Close() })
	keys := sqlite.NewKeyStore(keysDB)
	d.log = audittest.Open(t, filepath.Join(d.dir, "audit"), keys)
	kms, _, err := vault.OpenLocalKMS(filepath.Join(d.dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	if d.vault, err = vault.New(ctx, vault.Config{Store: sqlite.NewVaultStore(data), Keys: keys, KMS: kms, Audit: d.log}); err != nil {
		t.Fatal(err)
	}
	d.store = sqlite.NewRequestStore(data)
	d.consent, err = consent.New(ctx, consent.Config{Store: sqlite.NewConsentStore(data), Subjects: vault.Directory{Store: sqlite.NewVaultStore(data), Keys: keys},
		Audit: d.log, Purposes: purposes, ProofKey: bytes.Repeat([]byte{3}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.consent.Close() })
	if d.outbox, err = mail.NewOutbox(filepath.Join(d.dir, "outbox")); err != nil {
		t.Fatal(err)
	}
	sealKey := vault.NewKey()
	d.seal = func(p, ad []byte) []byte { return vault.Seal(&sealKey, p, ad) }
	d.unseal = func(s, ad []byte) ([]byte, error) { return vault.Open(&sealKey, s, ad) }
	d.pub, d.priv, _ = ed25519.GenerateKey(nil)
	return d
}

// runnerConfig returns rc (the systems, how to open them, the summary…)
// with everything the deployment provides filled in.
func (d *deployment) runnerConfig(rc request.RunnerConfig) request.RunnerConfig {
	rc.Store, rc.Vault, rc.Trail, rc.Audit, rc.Ledger = d.store, d.vault, d.log, d.log, d.consent
	rc.PseudonymKey = func(ctx context.Context, tenant, id string) ([]byte, error) {
		k, err := d.vault.PseudonymKey(ctx, tenant, id)
		return k[:], err
	}
	rc.Seal, rc.OpenSeal, rc.Mail = d.seal, d.unseal, d.outbox
	rc.Sign = func(msg []byte) []byte { return ed25519.Sign(d.priv, msg) }
	rc.BaseURL = func() string { return "https://lethe.example" }
	return rc
}

// start makes the runner from rc, runs it on a job queue in its own
// SQLite file configured by cfg (polling every 100 ms and retrying
// quickly unless cfg says otherwise), and makes the request service.
func (d *deployment) start(t testing.TB, rc request.RunnerConfig, cfg jobs.Config, organisation string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if d.runner, err = request.NewRunner(rc); err != nil {
		t.Fatal(err)
	}
	if d.qdb, err = jobs.OpenSQLite(filepath.Join(d.dir, "jobs.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.qdb.Close() })
	t.Cleanup(func() { d.runner.Close() }) // after the queue stops (cleanups run last first)
	cfg.SQLite, cfg.Workers = d.qdb, d.runner.Workers()
	if cfg.FetchPollInterval == 0 {
		cfg.FetchPollInterval = 100 * time.Millisecond
	}
	if cfg.RetryPolicy == nil {
		cfg.RetryPolicy = &jobs.Backoff{Base: 50 * time.Millisecond, Max: time.Second}
	}
	if err := jobs.Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(sctx)
	})
	d.runner.SetQueue(q)
	d.svc, err = request.New(request.Config{Store: d.store, Subjects: d.vault, Mail: d.outbox, Audit: d.log, Key: bytes.Repeat([]byte{5}, 32),
		Seal: d.seal, Open: d.unseal, Organisation: organisation, Runner: d.runner})
	if err != nil {
		t.Fatal(err)
	}
}
