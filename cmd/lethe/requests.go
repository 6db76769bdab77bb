package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// requestsSecret names the deployment secret that seals requests' contacts
// and keys their index and codes.
const requestsSecret = "requests"

// openRequests starts the data-subject request service, with mail going
// to the configured server or to the outbox in the data directory.
func openRequests(ctx context.Context, cfg Config, st *stores, kms vault.KMS, auditor lethe.Auditor, v *vault.Service, log *slog.Logger) (*request.Service, error) {
	key, err := vault.DeploymentSecret(ctx, st.keyStore, kms, requestsSecret, nil)
	if err != nil {
		return nil, fmt.Errorf("requests key: %w", err)
	}
	sender, err := mailSender(cfg, log)
	if err != nil {
		return nil, err
	}
	seal := vault.DeriveKey(&key, "request-seal", "", "")
	mac := vault.DeriveKey(&key, "request-mac", "", "")
	return request.New(request.Config{
		Store: st.requests, Subjects: v, Mail: sender, Audit: auditor, Key: mac[:],
		Seal:         func(p, ad []byte) []byte { return vault.Seal(&seal, p, ad) },
		Open:         func(s, ad []byte) ([]byte, error) { return vault.Open(&seal, s, ad) },
		Organisation: cfg.Organisation, Logger: log,
	})
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
