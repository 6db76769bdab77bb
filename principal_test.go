package lethe

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestNewAPIKey(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	k, secret, err := NewAPIKey("shop backend", RoleService, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, APIKeySecretPrefix) || len(secret) != len(APIKeySecretPrefix)+43 {
		t.Errorf("secret shape: got length %d, want prefix %q and 43 base64url characters", len(secret), APIKeySecretPrefix)
	}
	if !bytes.Equal(k.Hash, HashAPIKeySecret(secret)) {
		t.Error("stored hash does not match the secret")
	}
	if !strings.HasPrefix(k.ID, "key_") || len(k.ID) != 20 {
		t.Errorf("id: got %q, want key_ and 16 characters", k.ID)
	}
	k2, secret2, _ := NewAPIKey("shop backend", RoleService, now, nil)
	if k2.ID == k.ID || secret2 == secret {
		t.Error("two keys share an ID or secret")
	}
	if !k.Active(now) {
		t.Error("new key is not active")
	}
}

func TestNewAPIKeyRejects(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Minute)
	tests := []struct {
		name    string
		keyName string
		role    Role
		expires *time.Time
	}{
		{"unknown role", "x", Role("root"), nil},
		{"empty name", "", RoleAdmin, nil},
		{"long name", strings.Repeat("a", 101), RoleAdmin, nil},
		{"control character", "a\nb", RoleAdmin, nil},
		{"expiry in the past", "x", RoleAdmin, &past},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := NewAPIKey(tt.keyName, tt.role, now, tt.expires)
			if got := ErrorCode(err); got != EINVALID {
				t.Errorf("got %q, want %q", got, EINVALID)
			}
		})
	}
}

func TestAPIKeyActive(t *testing.T) {
	now := time.Now()
	before, after := now.Add(-time.Second), now.Add(time.Second)
	tests := []struct {
		name             string
		expires, revoked *time.Time
		want             bool
	}{
		{"plain", nil, nil, true},
		{"expires later", &after, nil, true},
		{"expired", &before, nil, false},
		{"expires exactly now", &now, nil, false},
		{"revoked", nil, &before, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &APIKey{ExpiresAt: tt.expires, RevokedAt: tt.revoked}
			if got := k.Active(now); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoleCan(t *testing.T) {
	for _, r := range Roles {
		if !r.Can(PermPublic) || !r.Can(PermSelf) {
			t.Errorf("%s lacks public or self", r)
		}
	}
	if RoleService.Can(PermKeysManage) || Role("root").Can(PermSelf) {
		t.Error("a role holds a permission the matrix does not give it")
	}
	if !RoleAdmin.Can(PermKeysManage) {
		t.Error("admin cannot manage keys")
	}
}

// TestRecipientMayOnlyAskAboutForgotten holds the recipient role, held by
// third parties outside the organisation, to its one job.
func TestRecipientMayOnlyAskAboutForgotten(t *testing.T) {
	if _, _, err := NewAPIKey("mailer", RoleRecipient, time.Now(), nil); err != nil {
		t.Fatalf("a recipient key: %v", err)
	}
	for _, p := range Permissions {
		want := p == PermSelf || p == PermForgottenCheck
		if got := RoleRecipient.Can(p); got != want {
			t.Errorf("recipient × %s: got %v, want %v", p, got, want)
		}
	}
}
