package api

import (
	"context"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
)

type healthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
	return nil
}

// readyz pings every dependency. The answer names each check and says ok or
// unavailable, never why: the reason goes to the log.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	resp := healthResponse{Status: "ready", Checks: map[string]string{}}
	status := http.StatusOK
	for name, p := range s.ready {
		if err := p.Ping(ctx); err != nil {
			s.log.WarnContext(ctx, "readiness check failed", "check", name, "err", err.Error())
			resp.Checks[name] = "unavailable"
			resp.Status, status = "unavailable", http.StatusServiceUnavailable
			continue
		}
		resp.Checks[name] = "ok"
	}
	writeJSON(w, status, resp)
	return nil
}

type principalResponse struct {
	KeyID       string             `json:"key_id"`
	Name        string             `json:"name"`
	Role        lethe.Role         `json:"role"`
	Tenant      string             `json:"tenant,omitempty"`
	Permissions []lethe.Permission `json:"permissions"`
	ExpiresAt   *time.Time         `json:"expires_at,omitempty"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	k := principal(r.Context())
	resp := principalResponse{KeyID: k.ID, Name: k.Name, Role: k.Role, Tenant: k.Tenant, ExpiresAt: k.ExpiresAt, Permissions: []lethe.Permission{}}
	for _, p := range lethe.Permissions {
		if k.Role.Can(p) {
			resp.Permissions = append(resp.Permissions, p)
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

type createKeyRequest struct {
	Name      string     `json:"name"`
	Role      lethe.Role `json:"role"`
	Tenant    string     `json:"tenant,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type keyResponse struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      lethe.Role `json:"role"`
	Tenant    string     `json:"tenant,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Active    bool       `json:"active"`
}

type createdKeyResponse struct {
	keyResponse
	Secret string `json:"secret"`
}

type keyListResponse struct {
	Keys []keyResponse `json:"keys"`
}

func (s *Server) keyResponse(k *lethe.APIKey) keyResponse {
	return keyResponse{ID: k.ID, Name: k.Name, Role: k.Role, Tenant: k.Tenant, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, Active: k.Active(s.now())}
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	var req createKeyRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	k, secret, err := lethe.NewAPIKey(req.Name, req.Role, s.now(), req.ExpiresAt)
	if err != nil {
		return err
	}
	if req.Tenant != "" {
		if err := lethe.ValidTenant(req.Tenant); err != nil {
			return err
		}
		if k.Role == lethe.RoleAdmin {
			// An admin manages keys, and could mint itself an unbound one.
			return lethe.Errorf(lethe.EINVALID, "admin keys cannot be bound to a tenant")
		}
		k.Tenant = req.Tenant
	}
	if err := s.keys.CreateAPIKey(r.Context(), k); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "api key created", "request_id", requestID(r.Context()), "key_id", k.ID, "role", k.Role, "by", principal(r.Context()).ID)
	writeJSON(w, http.StatusCreated, createdKeyResponse{keyResponse: s.keyResponse(k), Secret: secret})
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.keys.APIKeys(r.Context())
	if err != nil {
		return err
	}
	resp := keyListResponse{Keys: make([]keyResponse, 0, len(keys))}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, s.keyResponse(k))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// revokeKey revokes a key, except the last active admin key: that would
// leave nobody able to manage keys, with no way back but the database.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	keys, err := s.keys.APIKeys(r.Context())
	if err != nil {
		return err
	}
	now := s.now()
	var target *lethe.APIKey
	activeAdmins := 0
	for _, k := range keys {
		if k.ID == id {
			target = k
		}
		if k.Role == lethe.RoleAdmin && k.Active(now) {
			activeAdmins++
		}
	}
	if target == nil {
		return lethe.Errorf(lethe.ENOTFOUND, "api key %s not found", sanitizeID(id))
	}
	if target.Role == lethe.RoleAdmin && target.Active(now) && activeAdmins == 1 {
		return lethe.Errorf(lethe.ECONFLICT, "api key %s is the last active admin key; create another admin key before revoking it", target.ID)
	}
	if err := s.keys.RevokeAPIKey(r.Context(), id, now); err != nil {
		return err
	}
	s.authn.forget(id)
	s.log.InfoContext(r.Context(), "api key revoked", "request_id", requestID(r.Context()), "key_id", target.ID, "by", principal(r.Context()).ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sanitizeID returns id if it looks like a key ID and a placeholder
// otherwise, so that a caller's arbitrary path text is not echoed.
func sanitizeID(id string) string {
	if len(id) <= 40 && validRequestID(id) {
		return id
	}
	return "(malformed id)"
}
