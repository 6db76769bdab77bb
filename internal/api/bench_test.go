package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/sqlite"
)

// The benchmarks below run requests through the whole handler stack
// (request ID, access log, metrics, authentication against a real SQLite
// key store, rate limit, permission check, handler, JSON encoding) in
// process, with httptest.NewRecorder: no network, no TLS. bench/noop.sh
// measures the same request over HTTPS from another process; the results
// and how to reproduce them are in docs/benchmarks.md.

// benchLogs are the logger settings a server runs with: "warn" is what
// bench/noop.sh uses (the access log line is built but filtered out),
// "info" is `lethe serve`'s default (one JSON access log line per request,
// written here to io.Discard so that the terminal's speed does not count).
var benchLogs = []struct {
	name  string
	level slog.Level
}{
	{"log=warn", slog.LevelWarn},
	{"log=info", slog.LevelInfo},
}

// newBenchServer returns the handler of a server on a fresh SQLite data
// store holding a few keys, and the secret of an admin key. The rate limit
// is far above anything a benchmark reaches, so it never answers 429.
//
// It does what newFixture does, minus the httptest server, for a
// *testing.B.
func newBenchServer(b *testing.B, level slog.Level) (http.Handler, string) {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenData(ctx, filepath.Join(b.TempDir(), "data.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	keys := sqlite.NewAPIKeyStore(db)
	var admin string
	// A handful of keys, so the lookup is an index search, not a scan of
	// a one-row table.
	for _, role := range lethe.Roles {
		k, secret, err := lethe.NewAPIKey("bench "+string(role), role, time.Now(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := keys.CreateAPIKey(ctx, k); err != nil {
			b.Fatal(err)
		}
		if role == lethe.RoleAdmin {
			admin = secret
		}
	}
	srv := api.New(api.Options{
		Keys:      keys,
		Ready:     map[string]lethe.Pinger{"data_store": db},
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level})),
		RateLimit: 1e9,
		RateBurst: 1e9,
	})
	return srv.Handler(), admin
}

func whoamiRequest(secret string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/whoami", nil)
	if secret != "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	return r
}

// serveOnce runs one request and reports whether it got the wanted
// status. The request is reused across iterations: the handler stack does
// not change it (it works on copies made by WithContext), as net/http would
// not change a request it hands to a handler.
func serveOnce(b *testing.B, h http.Handler, r *http.Request, want int) bool {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != want {
		b.Errorf("status: got %d, want %d: %s", w.Code, want, w.Body)
		return false
	}
	return true
}

// BenchmarkWhoAmI is the authenticated no-op request, one at a time.
func BenchmarkWhoAmI(b *testing.B) {
	for _, l := range benchLogs {
		b.Run(l.name, func(b *testing.B) {
			h, admin := newBenchServer(b, l.level)
			r := whoamiRequest(admin)
			b.ReportAllocs()
			for b.Loop() {
				if !serveOnce(b, h, r, http.StatusOK) {
					return
				}
			}
		})
	}
}

// BenchmarkWhoAmIParallel is the same request from GOMAXPROCS goroutines
// at once, all with one key: they share the SQLite read pool, the rate
// limiter's mutex and the metrics.
func BenchmarkWhoAmIParallel(b *testing.B) {
	for _, l := range benchLogs {
		b.Run(l.name, func(b *testing.B) {
			h, admin := newBenchServer(b, l.level)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := whoamiRequest(admin)
				for pb.Next() {
					if !serveOnce(b, h, r, http.StatusOK) {
						return
					}
				}
			})
		})
	}
}

// BenchmarkUnauthorized is the 401 path: with no Authorization header
// (no store lookup) and with a well-formed key the store does not hold
// (hash and lookup, then the same 401).
func BenchmarkUnauthorized(b *testing.B) {
	for _, tt := range []struct{ name, secret string }{
		{"no-credentials", ""},
		{"unknown-key", lethe.APIKeySecretPrefix + strings.Repeat("A", 43)}, // the shape of a real secret
	} {
		b.Run(tt.name, func(b *testing.B) {
			h, _ := newBenchServer(b, slog.LevelWarn)
			r := whoamiRequest(tt.secret)
			b.ReportAllocs()
			for b.Loop() {
				if !serveOnce(b, h, r, http.StatusUnauthorized) {
					return
				}
			}
		})
	}
}
