package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
)

const testPurposesYAML = `purposes:
  - key: billing
    description: Invoices and payment
    legal_basis: contract
    data_categories: [user.financial]
    policy: {version: "1", text_file: privacy.txt}
  - key: newsletter
    description: Monthly newsletter
    legal_basis: consent
    direct_marketing: true
    data_categories: [user.contact.email]
    data_use: marketing.communications
    policy: {version: v1, text_file: privacy.txt}
`

// TestConsentCacheFollowsWithdrawal: a client checks in a loop from its
// in-process cache while consent is withdrawn through another client; the
// cache turns to deny as soon as the stream brings the withdrawal, and
// never answers from a copy older than its bound.
func TestConsentCacheFollowsWithdrawal(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "purposes.yaml"), []byte(testPurposesYAML), 0o600)
	os.WriteFile(filepath.Join(dir, "privacy.txt"), []byte("We send a newsletter once a month.\n"), 0o600)
	in := serve(t, dir, nil)
	admin := in.client(t, in.adminKey(t))
	svc, err := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	app := in.client(t, svc.Secret)
	ps, err := app.Purposes(ctx)
	if err != nil || len(ps) != 2 || ps[1].Policy.TextHash == "" {
		t.Fatalf("purposes: %+v, %v", ps, err)
	}
	s, err := app.CreateSubject(ctx, map[string]string{"email": "cache@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.RecordConsent(ctx, []lethe.ConsentRecord{{SubjectID: s.ID, Purpose: "newsletter", Kind: lethe.ConsentGrant}}); err != nil {
		t.Fatal(err)
	}
	cache, err := app.NewConsentCache(ctx, client.ConsentCacheConfig{MaxStaleness: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if ok, err := cache.Allowed(ctx, s.ID, "newsletter"); !ok || err != nil {
		t.Fatalf("cache after the grant: %v, %v", ok, err)
	}
	if ok, _ := cache.Allowed(ctx, s.ID, "billing"); !ok {
		t.Fatal("cache: billing (contract) for an existing subject denied")
	}

	// Withdraw through another client while the cache checks in a loop.
	other := in.client(t, svc.Secret)
	var withdrawn time.Time
	go func() {
		time.Sleep(50 * time.Millisecond)
		withdrawn = time.Now()
		if _, err := other.RecordConsent(ctx, []lethe.ConsentRecord{{SubjectID: s.ID, Purpose: "newsletter", Kind: lethe.ConsentWithdraw}}); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	checks := 0
	for {
		ok, err := cache.Allowed(ctx, s.ID, "newsletter")
		if err != nil {
			t.Fatal(err)
		}
		checks++
		if !ok {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the cache still allows 5 s after the withdrawal")
		}
	}
	// withdrawn was set before the request was sent; the answer came after.
	t.Logf("the cache said allow for %v after the withdrawal was sent (%d checks in the loop)", time.Since(withdrawn).Round(100*time.Microsecond), checks)
	if d, _ := cache.Check(ctx, s.ID, "newsletter"); d.Reason != lethe.DecisionWithdrawn {
		t.Errorf("reason %s, want %s", d.Reason, lethe.DecisionWithdrawn)
	}

	// The server goes away: past the staleness bound the cache asks the
	// server, which fails, and so denies.
	in.shutdown(t)
	time.Sleep(1500 * time.Millisecond)
	if ok, err := cache.Allowed(ctx, s.ID, "billing"); ok || err == nil {
		t.Errorf("a stale cache with no server: got %v, %v; want a denial with an error", ok, err)
	}
}

func TestServeRefusesBadPurposes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "purposes.yaml"), []byte("purposes:\n  - key: billing\n    description: x\n    legal_basis: contrakt\n    policy: {version: '1', text_sha256: "+strings.Repeat("a", 64)+"}\n"), 0o600)
	code, _, errOut := runCLI(nil, "serve", "--data-dir", dir, "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "purposes.yaml:2:") || !strings.Contains(errOut, `legal_basis "contrakt"`) {
		t.Errorf("serve with a bad purposes file: exit %d, %s", code, errOut)
	}
}
