package api_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
)

// TestRevocationReachesOtherInstances checks the key cache's promise: a key
// revoked through one instance stops working there at once and on another
// instance sharing the store within a second.
func TestRevocationReachesOtherInstances(t *testing.T) {
	clock := time.Now()
	now := func() time.Time { return clock }
	a := newFixture(t, api.Options{Now: now})
	b := api.New(api.Options{Keys: a.keys, Vault: a.vault, Now: now})
	other := httptest.NewServer(b.Handler())
	defer other.Close()
	svc := a.addKey(t, "shop", lethe.RoleService)

	onB := func() int {
		req := httptest.NewRequest("GET", "/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+svc)
		w := httptest.NewRecorder()
		b.Handler().ServeHTTP(w, req)
		return w.Code
	}
	if code := onB(); code != 200 {
		t.Fatalf("instance B before revocation: got %d", code)
	}
	keys, _ := a.keys.APIKeys(context.Background())
	var id string
	for _, k := range keys {
		if k.Name == "shop" {
			id = k.ID
		}
	}
	if resp, _ := a.do(t, "DELETE", "/v1/keys/"+id, a.admin, ""); resp.StatusCode != 204 {
		t.Fatalf("revoke: got %d", resp.StatusCode)
	}
	if resp, _ := a.do(t, "GET", "/v1/whoami", svc, ""); resp.StatusCode != 401 {
		t.Errorf("instance A right after revoking: got %d, want 401", resp.StatusCode)
	}
	clock = clock.Add(time.Second)
	if code := onB(); code != 401 {
		t.Errorf("instance B a second after the revocation: got %d, want 401", code)
	}
}
