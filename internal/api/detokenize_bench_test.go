package api_test

import (
	"context"
	"fmt"
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
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// BenchmarkDetokenizeHTTP sends POST /v1/detokenize with 100 tokens of 100
// subjects through the whole handler stack (no network, no TLS), with the
// server's audit log (durable, group-committed, checkpointed).
func BenchmarkDetokenizeHTTP(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	data, err := sqlite.OpenData(ctx, filepath.Join(dir, "data.db"))
	if err != nil {
		b.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { data.Close(); keysDB.Close() })
	kms, _, err := vault.OpenLocalKMS(filepath.Join(dir, "master.key"), "")
	if err != nil {
		b.Fatal(err)
	}
	auditLog := audittest.Open(b, filepath.Join(dir, "audit"), sqlite.NewKeyStore(keysDB))
	v, err := vault.New(ctx, vault.Config{Store: sqlite.NewVaultStore(data), Keys: sqlite.NewKeyStore(keysDB), KMS: kms, Audit: auditLog})
	if err != nil {
		b.Fatal(err)
	}
	keys := sqlite.NewAPIKeyStore(data)
	k, secret, _ := lethe.NewAPIKey("bench", lethe.RoleService, time.Now(), nil)
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	a := lethe.Actor{KeyID: k.ID, Role: k.Role}
	var tokens []string
	for i := range 100 {
		email := fmt.Sprintf("d%d@example.com", i)
		s, err := v.CreateSubject(ctx, a, lethe.NewSubject{Identifiers: map[string]string{"email": email}})
		if err != nil {
			b.Fatal(err)
		}
		toks, err := v.Tokenize(ctx, a, "", s.ID, []lethe.TokenRequest{{Field: "email", Value: &email}})
		if err != nil {
			b.Fatal(err)
		}
		tokens = append(tokens, fmt.Sprintf("%q", toks[0].Token))
	}
	body := `{"purpose":"billing","tokens":[` + strings.Join(tokens, ",") + `]}`
	h := api.New(api.Options{Keys: keys, Vault: v, Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})), RateLimit: 1e9, RateBurst: 1e9}).Handler()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v1/detokenize", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+secret)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("got %d", w.Code)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "values/s")
}
