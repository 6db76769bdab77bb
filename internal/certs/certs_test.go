package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, err := Ensure(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CreatedCA || !first.Renewed {
		t.Fatalf("first call: got created=%v renewed=%v, want true, true", first.CreatedCA, first.Renewed)
	}
	for name, want := range map[string]os.FileMode{caKeyFile: 0o600, keyFile: 0o600, CAFile: 0o644, certFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode: got %v, want %v", name, got, want)
		}
	}
	second, err := Ensure(dir, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if second.CreatedCA || second.Renewed {
		t.Errorf("second call: got created=%v renewed=%v, want false, false", second.CreatedCA, second.Renewed)
	}
	if second.Fingerprint != first.Fingerprint {
		t.Errorf("fingerprint changed: got %s, want %s", second.Fingerprint, first.Fingerprint)
	}
	if len(first.Fingerprint) != 32*3-1 {
		t.Errorf("fingerprint length: got %d, want %d", len(first.Fingerprint), 32*3-1)
	}
}

func TestEnsureRenewsNearExpiryWithSameCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, err := Ensure(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	later := now.Add(leafLifetime - renewBefore + time.Hour)
	second, err := Ensure(dir, later)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Renewed || second.CreatedCA {
		t.Fatalf("got renewed=%v created=%v, want true, false", second.Renewed, second.CreatedCA)
	}
	if second.Fingerprint != first.Fingerprint {
		t.Errorf("CA changed on renewal")
	}
	if !second.Certificate.Leaf.NotAfter.After(first.Certificate.Leaf.NotAfter) {
		t.Errorf("renewed certificate does not outlive the old one")
	}
}

func TestEnsureIncompleteCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, caKeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(dir, time.Now())
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("got %v, want an error saying the CA is incomplete", err)
	}
}

func TestHandshakeTrustsOnlyTheLocalCA(t *testing.T) {
	local, err := Ensure(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{local.Certificate}}
	srv.StartTLS()
	defer srv.Close()

	pemBytes, err := os.ReadFile(local.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		resp.Body.Close()
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a client without the local CA accepted the certificate")
	}
}
