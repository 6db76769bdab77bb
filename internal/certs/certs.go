// Package certs makes and keeps the local TLS certificate Lethe serves with
// when the operator has not given one: a private certificate authority and a
// server certificate for localhost, 127.0.0.1 and ::1, both kept in the data
// directory. Clients trust the CA file (ca.crt), never "skip verify".
//
// Keys are ECDSA P-256 from crypto/ecdsa, written with mode 0600. The server
// certificate is renewed from the kept CA well before it expires, so a
// long-running deployment's clients keep trusting the same CA.
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the data directory.
const (
	CAFile     = "ca.crt"
	caKeyFile  = "ca.key"
	certFile   = "server.crt"
	keyFile    = "server.key"
	caLifetime = 10 * 365 * 24 * time.Hour
	// Browsers cap publicly trusted leaves at 398 days; staying under that
	// keeps the local certificate acceptable to the same clients.
	leafLifetime = 397 * 24 * time.Hour
	// renewBefore is how long before expiry a server certificate is replaced.
	renewBefore = 30 * 24 * time.Hour
)

// Local is the result of Ensure.
type Local struct {
	CAFile      string          // path of the CA certificate clients should trust
	Fingerprint string          // SHA-256 of the CA certificate, colon-separated hex
	Certificate tls.Certificate // the server certificate with its key
	CreatedCA   bool            // the CA was made by this call
	Renewed     bool            // the server certificate was made or replaced by this call
}

// Hosts are the names the local server certificate is valid for.
var Hosts = []string{"localhost", "127.0.0.1", "::1"}

// Ensure loads the local CA and server certificate from dir, making what is
// missing and renewing a server certificate that expires within 30 days.
// Files are replaced atomically, so a crash leaves either the old or the new
// certificate, never half of one.
func Ensure(dir string, now time.Time) (*Local, error) {
	caCert, caKey, created, err := ensureCA(dir, now)
	if err != nil {
		return nil, err
	}
	l := &Local{CAFile: filepath.Join(dir, CAFile), Fingerprint: Fingerprint(caCert), CreatedCA: created}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err == nil && !created && leafUsable(cert, caCert, now) {
		l.Certificate = cert
		return l, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	if l.Certificate, err = issueLeaf(dir, caCert, caKey, now); err != nil {
		return nil, err
	}
	l.Renewed = true
	return l, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert as colon-separated
// upper-case hex, the form browsers and openssl print.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func ensureCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, bool, error) {
	certPEM, errC := os.ReadFile(filepath.Join(dir, CAFile))
	keyPEM, errK := os.ReadFile(filepath.Join(dir, caKeyFile))
	switch {
	case errC == nil && errK == nil:
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, false, fmt.Errorf("load local CA: %w", err)
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, false, errors.New("load local CA: key is not ECDSA")
		}
		if now.After(pair.Leaf.NotAfter) {
			return nil, nil, false, fmt.Errorf("local CA expired on %s: remove %s and %s to make a new one", pair.Leaf.NotAfter.Format(time.DateOnly), CAFile, caKeyFile)
		}
		return pair.Leaf, key, false, nil
	case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
	default:
		return nil, nil, false, fmt.Errorf("local CA in %s is incomplete (%s and %s must both exist or both be absent)", dir, CAFile, caKeyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Lethe local CA", Organization: []string{"Lethe"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, fmt.Errorf("parse CA certificate: %w", err)
	}
	// Key first: a crash between the two writes leaves a key without a
	// certificate, which the next start reports instead of silently
	// trusting a certificate whose key is gone.
	if err := writeKey(filepath.Join(dir, caKeyFile), key); err != nil {
		return nil, nil, false, err
	}
	if err := writeAtomic(filepath.Join(dir, CAFile), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, nil, false, err
	}
	return cert, key, true, nil
}

func leafUsable(cert tls.Certificate, ca *x509.Certificate, now time.Time) bool {
	leaf := cert.Leaf
	if leaf == nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	if leaf.CheckSignatureFrom(ca) != nil {
		return false
	}
	for _, h := range Hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func issueLeaf(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"Lethe"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create server certificate: %w", err)
	}
	if err := writeKey(filepath.Join(dir, keyFile), key); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeAtomic(filepath.Join(dir, certFile), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
}

func serial() *big.Int {
	// 128 random bits, as CA/Browser Forum rules ask for at least 64.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", filepath.Base(path), err)
	}
	return writeAtomic(path, pemBlock("PRIVATE KEY", der), 0o600)
}

func pemBlock(typ string, der []byte) []byte {
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: der})
	return b.Bytes()
}

// writeAtomic writes data to a temporary file with the given mode, syncs it
// and renames it over path.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
