package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/certs"
	"github.com/lethe-privacy/lethe/internal/consent"
	"github.com/lethe-privacy/lethe/internal/postgres"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// adminKeyFile is where the first start writes the bootstrap admin key.
const adminKeyFile = "admin.key"

// serverGCPercent is the GOGC lethe serve runs with unless GOGC is set.
const serverGCPercent = 300

func (m *Main) serve(ctx context.Context, args []string) error {
	cfg := DefaultConfig()
	fs := m.newFlagSet("serve")
	if err := cfg.bindFlags(fs, m.Getenv); err != nil {
		return usageErrorf("%v", err)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := cfg.Validate(set); err != nil {
		return err
	}
	log, err := m.logger(cfg.LogLevel)
	if err != nil {
		return err
	}
	if m.Getenv("GOGC") == "" {
		// The server's live heap is small (caches of keys, the consent
		// state); letting it grow to 4× between collections instead of 2×
		// cut the CPU a detokenisation of 100 values costs by 14 % in
		// bench/vault.sh (docs/benchmarks.md). GOGC overrides it.
		debug.SetGCPercent(serverGCPercent)
	}
	srv, err := start(ctx, cfg, log, m.Stdout)
	if err != nil {
		return err
	}
	if m.OnListen != nil {
		m.OnListen(srv.URL)
	}
	return srv.Wait()
}

func (m *Main) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("unknown log level %q", level)
	}
	return slog.New(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// stores are the two databases of a deployment and the stores on them.
type stores struct {
	data     closer
	keys     closer
	apiKeys  lethe.APIKeyStore
	vault    lethe.VaultStore
	keyStore lethe.KeyStore
	// checkpoints is the key store's anchor for the audit log.
	checkpoints lethe.CheckpointStore
	// deployment is the ID binding data store and key store.
	deployment string
	consent    lethe.ConsentStore
	requests   lethe.RequestStore
	// sharedAudit is the audit log every instance on a PostgreSQL data
	// store shares; nil with SQLite, where the log is in the data directory.
	sharedAudit *postgres.AuditLog
}

// closer is what both engines' databases offer.
type closer interface {
	lethe.DeploymentBinder
	lethe.Pinger
	Close() error
}

func (s *stores) Close() error {
	return errors.Join(s.data.Close(), s.keys.Close())
}

// openStores opens the data store and the key store and checks that they
// belong to the same deployment.
func openStores(ctx context.Context, cfg Config, log *slog.Logger) (*stores, error) {
	s := &stores{}
	if isPostgresURL(cfg.Store) {
		db, err := postgres.OpenData(ctx, cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("open data store (PostgreSQL): %w", err)
		}
		s.data, s.apiKeys, s.vault, s.consent, s.requests = db, postgres.NewAPIKeyStore(db), postgres.NewVaultStore(db), postgres.NewConsentStore(db), postgres.NewRequestStore(db)
		if s.sharedAudit, err = postgres.NewAuditLog(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
	} else {
		db, err := sqlite.OpenData(ctx, filepath.Join(cfg.DataDir, "data.db"))
		if err != nil {
			return nil, fmt.Errorf("open data store: %w", err)
		}
		s.data, s.apiKeys, s.vault, s.consent, s.requests = db, sqlite.NewAPIKeyStore(db), sqlite.NewVaultStore(db), sqlite.NewConsentStore(db), sqlite.NewRequestStore(db)
	}
	if isPostgresURL(cfg.KeyStore) {
		db, err := postgres.OpenKeys(ctx, cfg.KeyStore)
		if err != nil {
			s.data.Close()
			return nil, fmt.Errorf("open key store (PostgreSQL): %w", err)
		}
		ks := postgres.NewKeyStore(db)
		s.keys, s.keyStore, s.checkpoints = db, ks, ks
	} else {
		db, err := sqlite.OpenKeys(ctx, cfg.KeyStore)
		if err != nil {
			s.data.Close()
			return nil, fmt.Errorf("open key store: %w", err)
		}
		ks := sqlite.NewKeyStore(db)
		s.keys, s.keyStore, s.checkpoints = db, ks, ks
	}
	if err := bindDeployment(ctx, s, log); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// bindDeployment makes sure data store and key store were created together.
// Opening a data store with another deployment's key store (say, after
// restoring one of the two from the wrong backup) would make every
// encrypted record unreadable or, worse, mix two deployments' keys.
func bindDeployment(ctx context.Context, s *stores, log *slog.Logger) error {
	b := make([]byte, 12)
	rand.Read(b)
	candidate := "dep_" + hex.EncodeToString(b)
	keysID, err := s.keys.BindDeployment(ctx, candidate)
	if err != nil {
		return fmt.Errorf("bind key store: %w", err)
	}
	dataID, err := s.data.BindDeployment(ctx, keysID)
	if err != nil {
		return fmt.Errorf("bind data store: %w", err)
	}
	if dataID != keysID {
		return fmt.Errorf("data store belongs to deployment %s but key store to %s: they are not a pair (was one of them restored from another deployment's backup?)", dataID, keysID)
	}
	s.deployment = keysID
	if keysID == candidate {
		log.Info("new deployment", "deployment_id", keysID)
	}
	return nil
}

// server is a running Lethe server.
type server struct {
	MasterKeyFile string // set when this start made the local master key
	URL           string
	CAFile        string // "" when serving a given certificate or plain HTTP
	AdminKeyFile  string // set when this start made the bootstrap admin key
	http          *http.Server
	stores        *stores
	audit         auditLog
	consent       *consent.Service
	stopRequests  func(context.Context) error // stops the request job queue
	VerifierKey   string                      // the audit log's checkpoint verifier key
	background    sync.WaitGroup              // the forget-list replay and the audit pruner
	log           *slog.Logger
	timeout       time.Duration
	done          chan error
	ctx           context.Context
}

// start opens everything, listens and serves until ctx is done. Wait
// returns once the server has shut down and the stores are closed.
func start(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) (*server, error) {
	if err := ensureDataDir(cfg.DataDir, log); err != nil {
		return nil, err
	}
	st, err := openStores(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	s := &server{stores: st, log: log, timeout: cfg.ShutdownTimeout, done: make(chan error, 1), ctx: ctx}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	if s.AdminKeyFile, err = bootstrapAdmin(ctx, st.apiKeys, cfg.DataDir); err != nil {
		return nil, err
	}
	kms, err := openKMS(ctx, cfg.DataDir, cfg.masterKeyEnv, st.keyStore, log)
	if err != nil {
		return nil, err
	}
	if kms.created {
		s.MasterKeyFile = kms.path
	}
	var newVerifier bool
	if s.audit, s.VerifierKey, newVerifier, err = openAudit(ctx, cfg, st, kms.LocalKMS, log); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			s.audit.Close()
		}
	}()
	if s.consent, err = openConsent(ctx, cfg, st, kms.LocalKMS, s.audit, log); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			s.consent.Close()
		}
	}()
	vc := vault.Config{Store: st.vault, Keys: st.keyStore, KMS: kms.LocalKMS, Audit: s.audit, CacheSize: cfg.KeyCacheSize, Erasures: s.consent}
	if len(s.consent.Purposes()) > 0 {
		vc.Purposes = s.consent
	} else {
		log.Warn("no purposes declared: reads and detokenisation for a purpose are not checked against consent; declare them in purposes.yaml (see docs/consent.md)")
	}
	v, err := vault.New(ctx, vc)
	if err != nil {
		return nil, fmt.Errorf("start vault: %w", err)
	}
	reqs, stopRequests, err := openRequests(ctx, cfg, st, kms.LocalKMS, s.audit, v, s.consent, func() string {
		// Where people reach the server: --public-url, else the address it
		// listens on (known once it listens, before any request runs).
		if cfg.PublicURL != "" {
			return cfg.PublicURL
		}
		return s.URL
	}, log)
	if err != nil {
		return nil, err
	}
	s.stopRequests = stopRequests
	defer func() {
		if !ok {
			stopRequests(context.Background())
		}
	}()
	var tlsConf *tls.Config
	if !cfg.InsecureHTTP {
		var fingerprint string
		tlsConf, s.CAFile, fingerprint, err = tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		if s.CAFile != "" {
			fmt.Fprintf(out, "TLS: certificate from the local CA %s\n     CA fingerprint (SHA-256) %s\n", s.CAFile, fingerprint)
			log.Info("tls with local CA", "ca_file", s.CAFile, "ca_sha256", fingerprint)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
		log.Warn("serving PLAIN HTTP without TLS (--insecure-http): API keys and personal data cross the connection unencrypted; use only for local debugging", "addr", ln.Addr().String())
	} else {
		ln = tls.NewListener(ln, tlsConf)
	}
	s.URL = scheme + "://" + ln.Addr().String()

	a := api.New(api.Options{
		Keys:          st.apiKeys,
		Vault:         v,
		Audit:         s.audit,
		Consent:       s.consent,
		Requests:      reqs,
		SelfRateLimit: cfg.SelfRateLimit, SelfContactLimit: cfg.SelfContactLimit,
		Ready:        map[string]lethe.Pinger{"data_store": st.data, "key_store": st.keys, "audit_log": s.audit},
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
		RateLimit:    cfg.RateLimit,
		RateBurst:    cfg.RateBurst,
	})
	s.http = &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.http.RegisterOnShutdown(a.CloseStreams)
	go func() { s.done <- s.http.Serve(ln) }()
	// Erasures the data store may have forgotten (a restored backup) are
	// replayed from the key store's forget list, beside serving: until
	// then the restored rows are unreadable and reads of them answer 410.
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		start := time.Now()
		n, err := v.ReplayForgetList(ctx, nil)
		switch {
		case err != nil && ctx.Err() != nil:
			log.Info("forget-list replay stopped by shutdown", "replayed", n)
		case err != nil:
			log.Error("forget-list replay failed", "replayed", n, "err", err.Error())
		default:
			log.Info("forget list replayed", "entries", n, "duration_ms", time.Since(start).Milliseconds())
		}
	}()
	if s.MasterKeyFile != "" {
		fmt.Fprintf(out, "Master key made at %s (mode 0600). Without it no personal data can be read: back it up, apart from the key store's backups.\n", s.MasterKeyFile)
	}
	if cfg.AuditRetention > 0 {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			pruneAudit(ctx, s.audit, cfg.AuditRetention, log)
		}()
	}
	if newVerifier {
		fmt.Fprintf(out, "Audit log checkpoints are signed; their verifier key (also in %s):\n  %s\nKeep a copy outside this machine: 'lethe audit verify --key' with it proves the log was not altered.\n", filepath.Join(auditDir(cfg.DataDir), verifierKeyFile), s.VerifierKey)
	}
	if s.AdminKeyFile != "" {
		fmt.Fprintf(out, "Admin API key written to %s (mode 0600). Keep it secret; make other keys with 'lethe keys create'.\n", s.AdminKeyFile)
	}
	fmt.Fprintf(out, "Lethe %s listening on %s\n", binaryVersion(), s.URL)
	log.Info("listening", "url", s.URL, "version", binaryVersion())
	ok = true
	return s, nil
}

// Wait blocks until the server's context is done, then shuts down
// gracefully: the listener closes, in-flight requests get up to the
// shutdown timeout to finish, then the stores close.
func (s *server) Wait() error {
	var serveErr error
	select {
	case <-s.ctx.Done():
	case serveErr = <-s.done:
	}
	s.log.Info("shutting down", "timeout", s.timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	shutErr := s.http.Shutdown(sctx)
	if serveErr == nil {
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	s.background.Wait()
	stopErr := s.stopRequests(sctx)
	closeErr := errors.Join(stopErr, s.consent.Close(), s.audit.Close(), s.stores.Close())
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	err := errors.Join(serveErr, shutErr, closeErr)
	if err == nil {
		s.log.Info("stopped")
	}
	return err
}

// ensureDataDir creates the data directory with mode 0700, or warns when an
// existing one is open to other users.
func ensureDataDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("data directory is accessible to other users; run chmod 700 on it", "data_dir", dir, "mode", fi.Mode().Perm().String())
	}
	return nil
}

// bootstrapAdmin makes the first admin key when the data store has no key
// at all, and writes its secret to admin.key (0600) in the data directory.
// The file is written before the key is stored: a crash in between leaves
// a file whose key the next start registers, never a stored key nobody can
// read. It returns the file's path when it made or registered the key.
func bootstrapAdmin(ctx context.Context, keys lethe.APIKeyStore, dataDir string) (string, error) {
	existing, err := keys.APIKeys(ctx)
	if err != nil {
		return "", fmt.Errorf("list api keys: %w", err)
	}
	if len(existing) > 0 {
		return "", nil
	}
	path := filepath.Join(dataDir, adminKeyFile)
	k, secret, err := lethe.NewAPIKey("bootstrap admin", lethe.RoleAdmin, time.Now(), nil)
	if err != nil {
		return "", err
	}
	if b, err := os.ReadFile(path); err == nil {
		// Left by a start that crashed before storing the key, or kept
		// from a data store that was since removed: register it.
		secret = strings.TrimSpace(string(b))
		if !strings.HasPrefix(secret, lethe.APIKeySecretPrefix) {
			return "", fmt.Errorf("%s exists but holds no Lethe API key; move it away and start again", path)
		}
		k.Hash = lethe.HashAPIKeySecret(secret)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", adminKeyFile, err)
	} else if err := writeSecretFile(path, secret+"\n"); err != nil {
		return "", err
	}
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		return "", fmt.Errorf("store bootstrap admin key: %w", err)
	}
	return path, nil
}

// writeSecretFile creates path with mode 0600, failing if it exists, and
// syncs it to disk.
func writeSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}

// tlsConfig returns the server's TLS configuration: the given certificate,
// or the local CA's certificate made on first start. It returns the CA file
// and fingerprint in the latter case.
func tlsConfig(cfg Config) (*tls.Config, string, string, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, "", "", fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
		return conf, "", "", nil
	}
	local, err := certs.Ensure(cfg.DataDir, time.Now())
	if err != nil {
		return nil, "", "", fmt.Errorf("local TLS certificate: %w", err)
	}
	conf.Certificates = []tls.Certificate{local.Certificate}
	return conf, local.CAFile, local.Fingerprint, nil
}

// localKMS is the opened local keyring and whether this start made it.
type localKMS struct {
	*vault.LocalKMS
	path    string
	created bool
}

// openKMS opens the master key: LETHE_MASTER_KEY when set, else the
// keyring file master.key in the data directory, made on the deployment's
// first start. A key store that already holds wrapped keys needs the master
// key that wrapped them: making a new one would only produce a keyring that
// opens nothing, so that is refused.
func openKMS(ctx context.Context, dataDir, env string, keys lethe.KeyStore, log *slog.Logger) (*localKMS, error) {
	path := filepath.Join(dataDir, "master.key")
	if env == "" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			used, err := vault.Initialized(ctx, keys)
			if err != nil {
				return nil, err
			}
			if used {
				return nil, fmt.Errorf("the key store holds keys wrapped by a master key this instance lacks: copy the deployment's master.key into %s or set LETHE_MASTER_KEY", dataDir)
			}
		}
	}
	k, created, err := vault.OpenLocalKMS(path, env)
	if err != nil {
		return nil, fmt.Errorf("open master key: %w", err)
	}
	if env != "" {
		log.Info("master key from LETHE_MASTER_KEY", "kek_id", k.CurrentID())
	} else if created {
		log.Warn("made a new master key; back it up apart from the key store", "path", path, "kek_id", k.CurrentID())
	}
	return &localKMS{LocalKMS: k, path: path, created: created}, nil
}
