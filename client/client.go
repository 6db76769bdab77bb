// Package client is the Go client for Lethe's HTTP API. The lethe CLI uses
// it, and so can applications.
//
// A Client talks HTTPS only to a server whose certificate chains to the CA
// it is given (the ca.crt that `lethe serve` writes into its data directory)
// or, with no CA given, to the system roots. There is no option to skip
// certificate verification.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Config says where the server is and how to authenticate.
type Config struct {
	URL    string // base URL, e.g. https://127.0.0.1:8443
	APIKey string // bearer secret; empty for the health probes only
	CAFile string // PEM file of the CA to trust; empty: system roots
	Tenant string // tenant to act in (Lethe-Tenant header); empty: "default"
	// HTTPClient, when set, is used as is (CAFile is then ignored).
	HTTPClient *http.Client
}

// Client calls the Lethe API. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	key    string
	tenant string
	http   *http.Client
}

// New returns a Client for c. It fails if the URL is not https (or plain
// http to a loopback address, which a server only accepts with
// --insecure-http) or the CA file cannot be read.
func New(c Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(c.URL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("server URL %q is not an absolute URL", c.URL)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("server URL must use https (plain http only to a loopback address)")
	}
	hc := c.HTTPClient
	if hc == nil {
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pemBytes, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CAFile)
			}
			tlsConf.RootCAs = pool
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsConf
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	return &Client{base: u, key: c.APIKey, tenant: c.Tenant, http: hc}, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1" || strings.HasPrefix(host, "127.")
}

// Error is a problem answer from the server. Unwrap yields the matching
// *lethe.Error, so lethe.ErrorCode works on errors from this package.
type Error struct {
	Status    int
	Code      string
	Detail    string
	RequestID string
}

func (e *Error) Error() string {
	return fmt.Sprintf("lethe: %d %s: %s (request %s)", e.Status, e.Code, e.Detail, e.RequestID)
}

// Unwrap returns the domain error.
func (e *Error) Unwrap() error { return &lethe.Error{Code: e.Code, Message: e.Detail} }

// do sends a request with an optional JSON body and decodes a JSON answer
// into out when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.tenant != "" {
		req.Header.Set("Lethe-Tenant", c.tenant)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&p) == nil && p.Code != "" {
			e.Code, e.Detail = p.Code, p.Detail
		} else {
			e.Code, e.Detail = lethe.EINTERNAL, http.StatusText(resp.StatusCode)
		}
		return e
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s response: %w", method, path, err)
	}
	return nil
}

// Principal is the caller as the server sees it.
type Principal struct {
	KeyID       string     `json:"key_id"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	Tenant      string     `json:"tenant,omitempty"`
	Permissions []string   `json:"permissions"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// WhoAmI returns the principal the client's key authenticates as.
func (c *Client) WhoAmI(ctx context.Context) (*Principal, error) {
	var p Principal
	return &p, c.do(ctx, "GET", "/v1/whoami", nil, &p)
}

// Health reports whether the server is live (/healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, "GET", "/healthz", nil, nil)
}

// Ready reports whether the server and its stores can serve (/readyz).
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, "GET", "/readyz", nil, nil)
}

// Key describes an API key; the secret is never part of it.
type Key struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Tenant    string     `json:"tenant,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Active    bool       `json:"active"`
}

// CreatedKey is a new key with its secret, which no later call returns.
type CreatedKey struct {
	Key
	Secret string `json:"secret"`
}

// KeySpec describes a key to create: a name saying what it is for, a
// role, optionally the one tenant it may act in (not for admin keys) and an
// expiry.
type KeySpec struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Tenant    string     `json:"tenant,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreateKey makes an API key.
func (c *Client) CreateKey(ctx context.Context, spec KeySpec) (*CreatedKey, error) {
	var k CreatedKey
	return &k, c.do(ctx, "POST", "/v1/keys", spec, &k)
}

// Keys lists all API keys, oldest first.
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var out struct {
		Keys []Key `json:"keys"`
	}
	return out.Keys, c.do(ctx, "GET", "/v1/keys", nil, &out)
}

// RevokeKey revokes the key with the given ID.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("revoke key: empty key ID")
	}
	return c.do(ctx, "DELETE", "/v1/keys/"+url.PathEscape(id), nil, nil)
}
