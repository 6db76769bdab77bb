package main

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/request"
)

// Config is everything `lethe serve` reads, once, at start. Each field can
// be set by a flag or by the LETHE_* environment variable named beside it;
// a flag wins. Secrets are never taken from flags: a database password goes
// in the environment (LETHE_STORE, PGPASSWORD) or a pgpass file.
type Config struct {
	DataDir          string        // --data-dir, LETHE_DATA_DIR
	Addr             string        // --addr, LETHE_ADDR
	Store            string        // --store, LETHE_STORE: "" (SQLite in DataDir) or postgres://…
	KeyStore         string        // --key-store, LETHE_KEY_STORE: "" (DataDir/keys.db), a file path or postgres://…
	TLSCert          string        // --tls-cert, LETHE_TLS_CERT
	TLSKey           string        // --tls-key, LETHE_TLS_KEY
	InsecureHTTP     bool          // --insecure-http: plain HTTP, loopback only
	MaxBodyBytes     int64         // --max-body-bytes, LETHE_MAX_BODY_BYTES
	RateLimit        float64       // --rate-limit, LETHE_RATE_LIMIT: requests/s per principal
	RateBurst        int           // --rate-burst, LETHE_RATE_BURST
	LogLevel         string        // --log-level, LETHE_LOG_LEVEL: debug, info, warn, error
	ShutdownTimeout  time.Duration // --shutdown-timeout: how long in-flight requests may take to finish
	KeyCacheSize     int           // --key-cache, LETHE_KEY_CACHE: unwrapped subject keys kept in memory
	AuditPublish     string        // --audit-publish, LETHE_AUDIT_PUBLISH: where else checkpoints go (files, URLs), comma-separated
	AuditRetention   time.Duration // --audit-retention, LETHE_AUDIT_RETENTION: prune audit events older than this; 0 keeps all
	AckReminder      time.Duration // --ack-reminder, LETHE_ACK_REMINDER: how often a system waited for is reminded
	AckTimeout       time.Duration // --ack-timeout, LETHE_ACK_TIMEOUT: how long a system is waited for before its task fails
	AuditStartNewLog bool          // --audit-start-new-log: set a damaged audit log aside and begin a new one
	Purposes         string        // --purposes, LETHE_PURPOSES: the purposes file (default purposes.yaml in the data directory, if present)
	Datamap          string        // --datamap, LETHE_DATAMAP: the data map the requests run across (a file or directory)
	PublicURL        string        // --public-url, LETHE_PUBLIC_URL: the URL people reach this server at (download links); default https://ADDR
	Organisation     string        // --organisation, LETHE_ORGANISATION: the controller's name, in messages to people
	SMTPAddr         string        // --smtp-addr, LETHE_SMTP_ADDR: HOST:PORT of the mail server; empty writes mail to DataDir/outbox
	SMTPFrom         string        // --smtp-from, LETHE_SMTP_FROM
	SMTPUser         string        // --smtp-user, LETHE_SMTP_USER
	SMTPPasswordFile string        // --smtp-password-file, LETHE_SMTP_PASSWORD_FILE: the password, in a file (never a flag)
	SMTPTLS          string        // --smtp-tls, LETHE_SMTP_TLS: starttls (default) or tls
	SelfRateLimit    int           // --self-rate-limit, LETHE_SELF_RATE_LIMIT: self-service calls per minute per client address
	SelfContactLimit int           // --self-contact-limit, LETHE_SELF_CONTACT_LIMIT: self-service requests per hour naming one contact address

	masterKeyEnv string // LETHE_MASTER_KEY: base64 master key; never a flag
}

// DefaultConfig returns the embedded default: SQLite in ./lethe-data,
// HTTPS on 127.0.0.1:8443 with a locally made certificate.
func DefaultConfig() Config {
	return Config{
		DataDir:          "lethe-data",
		Addr:             "127.0.0.1:8443",
		MaxBodyBytes:     1 << 20,
		RateLimit:        1000,
		RateBurst:        2000,
		LogLevel:         "info",
		ShutdownTimeout:  30 * time.Second,
		KeyCacheSize:     100_000,
		SMTPTLS:          "starttls",
		SelfRateLimit:    10,
		SelfContactLimit: 5,
		AckReminder:      request.DefaultAckReminder,
		AckTimeout:       request.DefaultAckTimeout,
	}
}

// bindFlags registers the config's flags on fs, with defaults taken from
// the environment where set.
func (c *Config) bindFlags(fs *flag.FlagSet, getenv func(string) string) error {
	env := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	env("LETHE_DATA_DIR", &c.DataDir)
	env("LETHE_ADDR", &c.Addr)
	env("LETHE_STORE", &c.Store)
	env("LETHE_KEY_STORE", &c.KeyStore)
	env("LETHE_TLS_CERT", &c.TLSCert)
	env("LETHE_TLS_KEY", &c.TLSKey)
	env("LETHE_LOG_LEVEL", &c.LogLevel)
	env("LETHE_AUDIT_PUBLISH", &c.AuditPublish)
	env("LETHE_PURPOSES", &c.Purposes)
	env("LETHE_DATAMAP", &c.Datamap)
	env("LETHE_ORGANISATION", &c.Organisation)
	env("LETHE_PUBLIC_URL", &c.PublicURL)
	env("LETHE_SMTP_ADDR", &c.SMTPAddr)
	env("LETHE_SMTP_FROM", &c.SMTPFrom)
	env("LETHE_SMTP_USER", &c.SMTPUser)
	env("LETHE_SMTP_PASSWORD_FILE", &c.SMTPPasswordFile)
	env("LETHE_SMTP_TLS", &c.SMTPTLS)
	for name, dst := range map[string]*time.Duration{"LETHE_AUDIT_RETENTION": &c.AuditRetention, "LETHE_ACK_REMINDER": &c.AckReminder, "LETHE_ACK_TIMEOUT": &c.AckTimeout} {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("environment variable %s=%q is not a duration (like 72h)", name, v)
			}
			*dst = d
		}
	}
	c.masterKeyEnv = getenv("LETHE_MASTER_KEY")
	for name, dst := range map[string]any{"LETHE_MAX_BODY_BYTES": &c.MaxBodyBytes, "LETHE_RATE_LIMIT": &c.RateLimit, "LETHE_RATE_BURST": &c.RateBurst, "LETHE_KEY_CACHE": &c.KeyCacheSize, "LETHE_SELF_RATE_LIMIT": &c.SelfRateLimit, "LETHE_SELF_CONTACT_LIMIT": &c.SelfContactLimit} {
		v := getenv(name)
		if v == "" {
			continue
		}
		var err error
		switch p := dst.(type) {
		case *int64:
			*p, err = strconv.ParseInt(v, 10, 64)
		case *float64:
			*p, err = strconv.ParseFloat(v, 64)
		case *int:
			*p, err = strconv.Atoi(v)
		}
		if err != nil {
			return fmt.Errorf("environment variable %s=%q is not a number", name, v)
		}
	}
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory (created with mode 0700)")
	fs.StringVar(&c.Addr, "addr", c.Addr, "address to listen on, HOST:PORT")
	fs.StringVar(&c.Store, "store", c.Store, "data store: empty for SQLite in the data directory, or a postgres:// URL without a password")
	fs.StringVar(&c.KeyStore, "key-store", c.KeyStore, "key store: empty for keys.db in the data directory, a file path, or a postgres:// URL of another database")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate chain (PEM); default: a local CA and certificate made in the data directory")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS private key (PEM) for --tls-cert")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "serve plain HTTP (only on a loopback address; for local debugging)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body accepted")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "requests per second allowed per API key")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "requests an API key may send in a burst above the rate")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "time in-flight requests get to finish on SIGINT/SIGTERM")
	fs.IntVar(&c.KeyCacheSize, "key-cache", c.KeyCacheSize, "unwrapped subject keys kept in memory (0 turns the cache off)")
	fs.StringVar(&c.AuditPublish, "audit-publish", c.AuditPublish, "also send every audit checkpoint to these places, comma-separated: file paths, or https:// URLs to POST it to")
	fs.StringVar(&c.Purposes, "purposes", c.Purposes, "YAML file declaring the purposes of processing (default: purposes.yaml in the data directory, if present; see docs/consent.md)")
	fs.BoolVar(&c.AuditStartNewLog, "audit-start-new-log", c.AuditStartNewLog, "if the audit log is damaged or rolled back, move it aside (kept as evidence) and begin a new one instead of refusing to start")
	fs.StringVar(&c.Datamap, "datamap", c.Datamap, "the data map (lethe.yaml, or a directory of YAML files) whose systems requests are carried out in; see docs/datamap.md")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the URL people reach this server at, for the download links mailed to them (default: https:// and --addr)")
	fs.StringVar(&c.Organisation, "organisation", c.Organisation, "the controller's name, used in messages to people about their requests")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", c.SMTPAddr, "mail server HOST:PORT for request codes and results (TLS required); empty: write each message to outbox/ in the data directory")
	fs.StringVar(&c.SMTPFrom, "smtp-from", c.SMTPFrom, "sender address of request mail")
	fs.StringVar(&c.SMTPUser, "smtp-user", c.SMTPUser, "mail server user name (AUTH PLAIN over TLS)")
	fs.StringVar(&c.SMTPPasswordFile, "smtp-password-file", c.SMTPPasswordFile, "file holding the mail server password")
	fs.StringVar(&c.SMTPTLS, "smtp-tls", c.SMTPTLS, "starttls (port 587) or tls (port 465)")
	fs.IntVar(&c.SelfRateLimit, "self-rate-limit", c.SelfRateLimit, "self-service request calls per minute allowed per client address")
	fs.IntVar(&c.SelfContactLimit, "self-contact-limit", c.SelfContactLimit, "self-service requests per hour that may name one contact address, from any client")
	fs.DurationVar(&c.AckReminder, "ack-reminder", c.AckReminder, "how often a third party or a person with a checklist is reminded of a request's part they have not acknowledged (the DPO is mailed too)")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", c.AckTimeout, "how long a request waits for such an acknowledgement before that system's part fails and the request shows as partially completed")
	fs.DurationVar(&c.AuditRetention, "audit-retention", c.AuditRetention, "prune audit events older than this (e.g. 26280h for 3 years); 0 keeps them all")
	return nil
}

// Validate checks the config and fills derived defaults. fromFlags names
// the flags given on the command line, where secrets must not appear.
func (c *Config) Validate(fromFlags map[string]bool) error {
	if c.DataDir == "" {
		return usageErrorf("--data-dir must not be empty")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return usageErrorf("--addr %q is not HOST:PORT", c.Addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usageErrorf("--addr %q has no valid port", c.Addr)
	}
	if c.InsecureHTTP {
		if !isLoopbackHost(host) {
			return usageErrorf("--insecure-http is accepted only on a loopback address (127.0.0.1, ::1, localhost), not %q", host)
		}
		if c.TLSCert != "" || c.TLSKey != "" {
			return usageErrorf("--insecure-http and --tls-cert/--tls-key exclude each other")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return usageErrorf("--tls-cert and --tls-key must be given together")
	}
	if c.SMTPTLS != "starttls" && c.SMTPTLS != "tls" {
		return usageErrorf("--smtp-tls must be starttls or tls (mail is never sent without TLS)")
	}
	if c.SMTPAddr != "" && c.SMTPFrom == "" {
		return usageErrorf("--smtp-addr needs --smtp-from, the sender address of request mail")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && c.InsecureHTTP)) {
			return usageErrorf("--public-url must be an https:// URL")
		}
	}
	if c.SelfContactLimit < 1 {
		return usageErrorf("--self-contact-limit must be at least 1")
	}
	if c.SelfRateLimit < 1 {
		return usageErrorf("--self-rate-limit must be at least 1")
	}
	for _, s := range []struct{ flag, value string }{{"store", c.Store}, {"key-store", c.KeyStore}} {
		if !isPostgresURL(s.value) {
			continue
		}
		u, err := url.Parse(s.value)
		if err != nil {
			return usageErrorf("--%s is not a valid postgres:// URL", s.flag)
		}
		if _, has := u.User.Password(); has && fromFlags[s.flag] {
			return usageErrorf("--%s holds a password, which would show in the process list: set it in LETHE_%s or PGPASSWORD, or use a pgpass file", s.flag, strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_")))
		}
	}
	if isPostgresURL(c.Store) && c.KeyStore == "" {
		return usageErrorf("with a PostgreSQL data store, set --key-store to a separate database (keys must never travel in data backups, and every instance must share them)")
	}
	if c.Store != "" && !isPostgresURL(c.Store) {
		return usageErrorf("--store must be empty (SQLite in the data directory) or a postgres:// URL")
	}
	if isPostgresURL(c.Store) && isPostgresURL(c.KeyStore) && sameDatabase(c.Store, c.KeyStore) {
		return usageErrorf("--store and --key-store name the same database; the key store must be a separate database so keys never travel in data backups")
	}
	if c.AckReminder < time.Minute || c.AckTimeout < c.AckReminder {
		return usageErrorf("--ack-reminder must be at least 1m, and --ack-timeout at least --ack-reminder")
	}
	if c.AuditRetention < 0 || (c.AuditRetention > 0 && c.AuditRetention < 24*time.Hour) {
		return usageErrorf("--audit-retention must be 0 (keep all) or at least 24h, not %s", c.AuditRetention)
	}
	for _, p := range c.auditPublish() {
		if strings.HasPrefix(p, "http://") {
			return usageErrorf("--audit-publish URL %q must use https://", p)
		}
		if !strings.HasPrefix(p, "https://") && !filepath.IsAbs(p) {
			return usageErrorf("--audit-publish %q must be an absolute file path or an https:// URL", p)
		}
	}
	if c.KeyStore == "" {
		c.KeyStore = filepath.Join(c.DataDir, "keys.db")
	}
	if !isPostgresURL(c.KeyStore) && c.Store == "" && filepath.Clean(c.KeyStore) == filepath.Join(filepath.Clean(c.DataDir), "data.db") {
		return usageErrorf("--key-store must not be the data store file")
	}
	if c.MaxBodyBytes < 1024 {
		return usageErrorf("--max-body-bytes must be at least 1024")
	}
	if c.RateLimit <= 0 || c.RateBurst < 1 {
		return usageErrorf("--rate-limit must be positive and --rate-burst at least 1")
	}
	if c.KeyCacheSize < 0 {
		return usageErrorf("--key-cache must not be negative")
	}
	if c.ShutdownTimeout <= 0 {
		return usageErrorf("--shutdown-timeout must be positive")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return usageErrorf("--log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	return nil
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// sameDatabase reports whether two postgres URLs name one database on one
// server.
func sameDatabase(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return strings.EqualFold(ua.Host, ub.Host) && strings.Trim(ua.Path, "/") == strings.Trim(ub.Path, "/")
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// auditPublish returns the places --audit-publish names.
func (c *Config) auditPublish() []string {
	var out []string
	for _, p := range strings.Split(c.AuditPublish, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
