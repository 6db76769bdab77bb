package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/consent"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// consentSecret names the key of the HMACs that stand for IP addresses and
// user agents in consent proofs.
const consentSecret = "consent-proof"

// purposesPath returns the purposes file to read, or "" if there is none:
// --purposes, else purposes.yaml in the data directory if it exists.
func purposesPath(cfg Config) (string, error) {
	if cfg.Purposes != "" {
		return cfg.Purposes, nil
	}
	path := filepath.Join(cfg.DataDir, "purposes.yaml")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	return path, nil
}

// openConsent loads the purposes and the consent ledger.
func openConsent(ctx context.Context, cfg Config, st *stores, kms vault.KMS, auditor lethe.Auditor, log *slog.Logger) (*consent.Service, error) {
	path, err := purposesPath(cfg)
	if err != nil {
		return nil, err
	}
	var purposes []lethe.Purpose
	if path != "" {
		if purposes, err = datamap.LoadPurposes(path); err != nil {
			return nil, err
		}
		log.Info("purposes declared", "file", path, "purposes", len(purposes))
	}
	key, err := vault.DeploymentSecret(ctx, st.keyStore, kms, consentSecret, nil)
	if err != nil {
		return nil, fmt.Errorf("consent proof key: %w", err)
	}
	s, err := consent.New(ctx, consent.Config{
		Store: st.consent, Subjects: vault.Directory{Store: st.vault, Keys: st.keyStore}, Audit: auditor,
		Purposes: purposes, ProofKey: key[:], Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("start consent: %w", err)
	}
	return s, nil
}
