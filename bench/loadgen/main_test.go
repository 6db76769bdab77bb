package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1", true},
		{"127.3.2.1", true},
		{"::1", true},
		{"localhost", true},
		{"10.0.0.1", false},
		{"192.168.1.10", false},
		{"172.16.0.1", false},
		{"8.8.8.8", false},
		{"::ffff:10.0.0.1", false},
		{"0.0.0.0", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			err := checkLoopbackHost(tt.host)
			if (err == nil) != tt.ok {
				t.Errorf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, url string
		want      string // error substring; "" for none
	}{
		{"loopback https", "https://127.0.0.1:8443", ""},
		{"loopback ipv6", "https://[::1]:8443/", ""},
		{"private address", "https://10.1.2.3:8443", "loopback"},
		{"public address", "https://1.1.1.1", "loopback"},
		{"with a path", "https://127.0.0.1:8443/v1", "base URL"},
		{"not http", "ftp://127.0.0.1", "http(s)"},
		{"empty", "", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config{url: tt.url, path: "/v1/whoami", concurrency: 1, duration: time.Second, timeout: time.Second}
			target, err := c.validate()
			if tt.want == "" {
				if err != nil || !strings.HasSuffix(target, "/v1/whoami") {
					t.Errorf("got %q, %v, want a target ending in /v1/whoami", target, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDialRefusesNonLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:443": true, "[::1]:443": true, "10.0.0.1:443": false, "93.184.216.34:443": false} {
		if err := dialLoopbackOnly("tcp4", addr, nil); (err == nil) != ok {
			t.Errorf("%s: got %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 90: 90, 99: 99, 100: 100, 0: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v: got %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: got %v, want 0", got)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("one value: got %v, want 7", got)
	}
}

// TestRun drives a short run against a local TLS server and checks the
// counts, not the timings.
func TestRun(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer s3cret":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/limited":
			w.WriteHeader(http.StatusTooManyRequests)
		case r.ProtoMajor != 1:
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
		default:
			w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer ts.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantOK   bool // some 2xx answers and no others
	}{
		{"ok", "/v1/whoami", 0, true},
		{"refused", "/limited", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"-url", ts.URL, "-path", tt.path, "-ca", ca, "-key-file", key,
				"-c", "4", "-d", "300ms", "-warmup", "50ms", "-json"}, &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("exit code: got %d, want %d; stderr: %s", code, tt.wantCode, errOut.String())
			}
			var s summary
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatalf("summary %q: %v", out.String(), err)
			}
			if s.Requests != s.OK+s.Errors+s.Non2xx || s.Concurrency != 4 {
				t.Errorf("inconsistent summary: %+v", s)
			}
			if tt.wantOK && (s.OK == 0 || s.Errors != 0 || s.Non2xx != 0 || s.P50 <= 0 || s.Max < s.P99) {
				t.Errorf("got %+v, want only 2xx answers", s)
			}
			if !tt.wantOK && (s.OK != 0 || s.Non2xx == 0 || s.Statuses["429"] != s.Non2xx) {
				t.Errorf("got %+v, want only 429 answers", s)
			}
			if strings.Contains(out.String()+errOut.String(), "s3cret") {
				t.Error("the API key was printed")
			}
		})
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-url", "https://192.168.0.1:8443", "-d", "1s"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "loopback") {
		t.Errorf("got exit %d, %q; want 2 and a refusal", code, errOut.String())
	}
}
