package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

func TestBodyTemplate(t *testing.T) {
	tests := []struct {
		name, template string
		n              int64
		want           string
		counted        bool
	}{
		{"create", `{"identifiers":{"email":"user{{n}}@example.com"},"profile":{"name":"N{{n}}"}}`, 42,
			`{"identifiers":{"email":"user42@example.com"},"profile":{"name":"N42"}}`, true},
		{"lookup", `{"kind":"email","value":"user{{n}}@example.com"}`, 0, `{"kind":"email","value":"user0@example.com"}`, true},
		{"at both ends", `{{n}}-{{n}}`, 1234567890123, `1234567890123-1234567890123`, true},
		{"adjacent", `{{n}}{{n}}`, 7, `77`, true},
		{"no placeholder", `{"a":1}`, 9, `{"a":1}`, false},
		{"single braces are text", `{"a":"{n}"}`, 3, `{"a":"{n}"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parseBodyTemplate(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b.render(nil, tt.n)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if got := string(b.render([]byte("x"), tt.n)); got != "x"+tt.want {
				t.Errorf("appending: got %s, want x%s", got, tt.want)
			}
			if b.counted() != tt.counted {
				t.Errorf("counted: got %v, want %v", b.counted(), tt.counted)
			}
		})
	}
	for _, bad := range []string{`{{N}}`, `{{ n }}`, `user{{n}}@{{host}}`, `{{n}`, `{{`} {
		if _, err := parseBodyTemplate(bad); err == nil || !strings.Contains(err.Error(), "{{n}}") {
			t.Errorf("%s: got %v, want a refusal naming {{n}}", bad, err)
		}
	}
}

func TestValidateRequest(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		headers  []string
		template string
		nMod     int64
		requests int64
		want     string // error substring; "" for none
	}{
		{"default get", "", nil, "", 0, 0, ""},
		{"post with template", "POST", []string{"Lethe-Tenant: acme", "Content-Type:application/json"}, `{"n":{{n}}}`, 0, 100, ""},
		{"post with n-mod", "POST", nil, `{"n":{{n}}}`, 10, 0, ""},
		{"post without body", "POST", nil, "", 0, 0, ""},
		{"lower-case method", "post", nil, `{}`, 0, 0, "method"},
		{"method with a space", "PO ST", nil, `{}`, 0, 0, "method"},
		{"body with get", "GET", nil, `{}`, 0, 0, "-method"},
		{"body with head", "HEAD", nil, `{}`, 0, 0, "-method"},
		{"n-mod without template", "POST", nil, "", 5, 0, "{{n}}"},
		{"n-mod without placeholder", "POST", nil, `{}`, 5, 0, "{{n}}"},
		{"negative n-mod", "POST", nil, `{{n}}`, -1, 0, "negative"},
		{"negative requests", "GET", nil, "", 0, -1, "negative"},
		{"bad placeholder", "POST", nil, `{{m}}`, 0, 0, "placeholder"},
		{"header without colon", "GET", []string{"X-Foo"}, "", 0, 0, "Name:value"},
		{"header with empty name", "GET", []string{":v"}, "", 0, 0, "Name:value"},
		{"header name with a space", "GET", []string{"X Foo: v"}, "", 0, 0, "Name:value"},
		{"header value with a line break", "GET", []string{"X-Foo: a\r\nX-Bar: b"}, "", 0, 0, "line break"},
		{"authorization header", "GET", []string{"authorization: Bearer lethe_x"}, "", 0, 0, "-key-file"},
		{"host header", "GET", []string{"Host: example.com"}, "", 0, 0, "transport"},
		{"content-length header", "POST", []string{"Content-Length: 3"}, `{}`, 0, 0, "transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config{url: "https://127.0.0.1:8443", path: "/v1/subjects", concurrency: 1, duration: time.Second, timeout: time.Second,
				method: tt.method, headers: tt.headers, template: tt.template, nMod: tt.nMod, requests: tt.requests}
			_, err := c.validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "lethe_x") {
				t.Errorf("the error %q echoes the API key", err)
			}
		})
	}
}

// TestRunBodyTemplate checks what the server receives: the method, the
// headers, and one body per request with {{n}} unique across workers (or
// cycling with -n-mod), and that -requests stops the run.
func TestRunBodyTemplate(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
		bad    []string
	)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method != http.MethodPost, r.Header.Get("Authorization") != "Bearer s3cret",
			r.Header.Get("Content-Type") != "application/json", r.Header.Get("Lethe-Tenant") != "acme",
			r.ContentLength != int64(len(b)):
			bad = append(bad, fmt.Sprintf("%s %q %q %d", r.Method, r.Header.Get("Content-Type"), r.Header.Get("Lethe-Tenant"), r.ContentLength))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		bodies = append(bodies, string(b))
		w.WriteHeader(http.StatusCreated)
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
	const tmpl = `{"identifiers":{"email":"user{{n}}@example.com"},"profile":{"name":"N{{n}}"}}`
	want := func(n int) string {
		return fmt.Sprintf(`{"identifiers":{"email":"user%d@example.com"},"profile":{"name":"N%d"}}`, n, n)
	}
	tests := []struct {
		name  string
		extra []string
		want  []string // the bodies, sorted
	}{
		{"unique", nil, func() []string {
			var w []string
			for n := range 200 {
				w = append(w, want(n))
			}
			return w
		}()},
		{"n-mod", []string{"-n-mod", "7"}, func() []string {
			var w []string
			for i := range 200 {
				w = append(w, want(i%7))
			}
			return w
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			bodies, bad = nil, nil
			mu.Unlock()
			var out, errOut bytes.Buffer
			args := append([]string{"-url", ts.URL, "-path", "/v1/subjects", "-ca", ca, "-key-file", key,
				"-method", "POST", "-header", "Lethe-Tenant: acme", "-body-template", tmpl, "-requests", "200",
				"-c", "8", "-d", "30s", "-warmup", "0", "-json"}, tt.extra...)
			code := run(context.Background(), args, &out, &errOut)
			if code != 0 {
				t.Fatalf("exit code: got %d, want 0; stderr: %s", code, errOut.String())
			}
			var s summary
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatalf("summary %q: %v", out.String(), err)
			}
			if s.OK != 200 || s.Requests != 200 {
				t.Errorf("got %d requests, %d OK, want 200 of each (-requests 200)", s.Requests, s.OK)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bad) > 0 {
				t.Fatalf("the server got %d malformed requests, the first: %s", len(bad), bad[0])
			}
			slices.Sort(bodies)
			w := slices.Clone(tt.want)
			slices.Sort(w)
			if !slices.Equal(bodies, w) {
				t.Errorf("got bodies %q…, want %q…", bodies[:min(3, len(bodies))], w[:3])
			}
		})
	}
}

// TestRunRejectsBadRequestFlags checks that request flags are usage errors
// and that no request is sent.
func TestRunRejectsBadRequestFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-url", "https://127.0.0.1:1", "-body-template", `{"n":{{n}}}`}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "-method") {
		t.Errorf("got exit %d, %q; want 2 and a message about -method", code, errOut.String())
	}
}
