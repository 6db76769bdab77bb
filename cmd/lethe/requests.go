package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/jobs"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// requestsSecret names the deployment secret that seals requests' contacts
// and keys their index and codes.
const requestsSecret = "requests"

// openRequests starts the data-subject request service and the runner that
// carries requests out across the data map's systems, on a durable job
// queue: with SQLite its own file beside the data store (jobs.db), with
// PostgreSQL River's tables in the data store. The returned function
// stops the queue: running jobs get until its context's deadline.
func openRequests(ctx context.Context, cfg Config, st *stores, kms vault.KMS, auditor auditLog, v *vault.Service, ledger request.Ledger, baseURL func() string, log *slog.Logger) (*request.Service, func(context.Context) error, error) {
	removeOldArchives(cfg.DataDir, log)
	key, err := vault.DeploymentSecret(ctx, st.keyStore, kms, requestsSecret, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("requests key: %w", err)
	}
	sender, err := mailSender(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	seal := vault.DeriveKey(&key, "request-seal", "", "")
	mac := vault.DeriveKey(&key, "request-mac", "", "")
	signSeed := vault.DeriveKey(&key, "request-receipt", "", "")
	signer := ed25519.NewKeyFromSeed(signSeed[:32])
	sealFn := func(p, ad []byte) []byte { return vault.Seal(&seal, p, ad) }
	openFn := func(s, ad []byte) ([]byte, error) { return vault.Open(&seal, s, ad) }

	var systems []string
	bySystem := map[string]*datamap.System{}
	summary := request.Summary{Organisation: cfg.Organisation}
	if cfg.Datamap != "" {
		man, err := datamap.Load(cfg.Datamap)
		if err != nil {
			return nil, nil, fmt.Errorf("data map: %w", err)
		}
		for i := range man.Systems {
			systems = append(systems, man.Systems[i].Name)
			bySystem[man.Systems[i].Name] = &man.Systems[i]
		}
		summary = summaryOf(man, cfg.Organisation)
		log.Info("requests run across the data map", "file", cfg.Datamap, "systems", len(systems))
	} else {
		log.Warn("no data map (--datamap): requests reach the vault alone; declare every system holding personal data (see docs/datamap.md)")
	}
	runner, err := request.NewRunner(request.RunnerConfig{
		Store: st.requests, Systems: systems, Vault: v, Audit: auditor, Trail: auditor, Ledger: ledger, Seal: sealFn, OpenSeal: openFn,
		Open: func(ctx context.Context, name string) (connector.Connector, error) {
			sys, ok := bySystem[name]
			if !ok {
				return nil, fmt.Errorf("system %s is not in the data map", name)
			}
			return openConnector(ctx, sys)
		},
		PseudonymKey: func(ctx context.Context, tenant, id string) ([]byte, error) {
			k, err := v.PseudonymKey(ctx, tenant, id)
			return k[:], err
		},
		Sign:    func(msg []byte) []byte { return ed25519.Sign(signer, msg) },
		Mail:    sender,
		BaseURL: baseURL,
		Summary: summary,
		Callback: func(system, signature string, body []byte) (string, string, int64, error) {
			return webhook.ReadCallback(bySystem[system], signature, body, time.Now())
		},
		AckReminder: cfg.AckReminder, AckTimeout: cfg.AckTimeout,
		Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	// Each job mostly waits on a system; 32 at once keep 10,000 queued
	// erasures well inside minutes (docs/benchmarks.md).
	// A request's stages (its systems, then its finish) each wait for a
	// poll: polling every 100 ms keeps an erasure's end-to-end time well
	// under a second (docs/benchmarks.md).
	jc := jobs.Config{Workers: runner.Workers(), Logger: log, Queues: map[string]int{jobs.DefaultQueue: 32}, FetchPollInterval: 100 * time.Millisecond}
	var closeDB func()
	if isPostgresURL(cfg.Store) {
		pool, err := pgxpool.New(ctx, cfg.Store)
		if err != nil {
			return nil, nil, fmt.Errorf("job queue: %w", err)
		}
		jc.Postgres, closeDB = pool, pool.Close
	} else {
		db, err := jobs.OpenSQLite(filepath.Join(cfg.DataDir, "jobs.db"))
		if err != nil {
			return nil, nil, err
		}
		jc.SQLite, closeDB = db, func() { db.Close() }
	}
	if err := jobs.Migrate(ctx, jc); err != nil {
		closeDB()
		return nil, nil, fmt.Errorf("job queue: %w", err)
	}
	q, err := jobs.New(ctx, jc)
	if err != nil {
		closeDB()
		return nil, nil, fmt.Errorf("job queue: %w", err)
	}
	if err := q.Start(ctx); err != nil {
		closeDB()
		return nil, nil, fmt.Errorf("job queue: %w", err)
	}
	runner.SetQueue(q)
	// Pick up requests whose jobs a crash kept from being enqueued, now
	// and every minute.
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			if n, err := runner.Resume(sweepCtx); err != nil && sweepCtx.Err() == nil {
				log.Error("resume requests", "looked_at", n, "err", err.Error())
			}
			select {
			case <-sweepCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	stop := func(ctx context.Context) error {
		stopSweep()
		<-swept
		err := q.Stop(ctx)
		closeDB()
		return errors.Join(err, runner.Close())
	}
	svc, err := request.New(request.Config{
		Store: st.requests, Subjects: v, Mail: sender, Audit: auditor, Key: mac[:],
		Seal: sealFn, Open: openFn, Organisation: summary.Organisation, Logger: log, Runner: runner,
	})
	if err != nil {
		stop(context.Background())
		return nil, nil, err
	}
	return svc, stop, nil
}

// oldArchivesDir is where, in <data-dir>, versions before access archives
// moved into the data store kept them: one directory per request (its
// sealed archive, its tenant, its download link's state).
const oldArchivesDir = "archives"

// removeOldArchives deletes the access archives an earlier version left in
// the data directory. Nothing serves them any more, so their download
// links no longer work; kept, they would be copies of people's data
// outliving their purpose. It logs how many requests' archives went, never
// what they held. A failure to remove them is logged as a warning, not
// fatal: the server works without them, and the operator can delete the
// directory by hand.
func removeOldArchives(dataDir string, log *slog.Logger) {
	dir := filepath.Join(dataDir, oldArchivesDir)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return
	} else if err != nil {
		log.Warn("could not look for access archives from an earlier version; delete the directory by hand", "dir", dir, "err", err.Error())
		return
	}
	n := 0
	entries, _ := os.ReadDir(dir) // what it could read, if not all: only a count
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("could not remove access archives from an earlier version; delete the directory by hand", "dir", dir, "err", err.Error())
		return
	}
	log.Info("access archives from an earlier version removed; their links no longer work", "dir", dir, "requests", n)
}

// mailSender returns the SMTP sender the config names, or the outbox.
func mailSender(cfg Config, log *slog.Logger) (mail.Sender, error) {
	if cfg.SMTPAddr == "" {
		o, err := mail.NewOutbox(filepath.Join(cfg.DataDir, "outbox"))
		if err != nil {
			return nil, fmt.Errorf("mail outbox: %w", err)
		}
		log.Info("request mail goes to the outbox directory (set --smtp-addr to send it)", "dir", o.Dir())
		return o, nil
	}
	password := ""
	if cfg.SMTPPasswordFile != "" {
		b, err := os.ReadFile(cfg.SMTPPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read --smtp-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	s, err := mail.NewSMTP(mail.SMTPConfig{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUser, Password: password, TLS: cfg.SMTPTLS})
	if err != nil {
		return nil, fmt.Errorf("mail server: %w", err)
	}
	log.Info("request mail goes to the mail server", "addr", cfg.SMTPAddr)
	return s, nil
}

// summaryOf is what an access archive tells the person, from the data map.
func summaryOf(m *datamap.Manifest, organisation string) request.Summary {
	s := request.Summary{Organisation: m.Organisation.Name, Purposes: m.Purposes}
	if organisation != "" {
		s.Organisation = organisation
	}
	s.Contact = m.DPO.Email
	if s.Contact == "" {
		s.Contact = m.Organisation.Contact
	}
	for _, r := range m.Recipients {
		line := r.Name
		var where []string
		if r.Country != "" {
			where = append(where, r.Country)
		}
		if r.Safeguards != "" {
			where = append(where, r.Safeguards)
		}
		if len(where) > 0 {
			line += " (" + strings.Join(where, "; ") + ")"
		}
		s.Recipients = append(s.Recipients, line)
	}
	for _, sys := range m.Systems {
		line := sys.Name
		if sys.Description != "" {
			line += ": " + sys.Description
		}
		s.Systems = append(s.Systems, line)
	}
	return s
}
