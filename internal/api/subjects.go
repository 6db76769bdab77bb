package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Tenant and purpose travel in headers: they are not personal data, and
// headers keep them out of the bodies that each route shapes differently.
const (
	headerTenant  = "Lethe-Tenant"
	headerPurpose = "Lethe-Purpose"
)

// validSubjectID reports whether id has the form of a subject ID: "sub_"
// and 26 characters of lower-case base32. A loop, not a regular
// expression: a batch check validates 100,000 of them.
func validSubjectID(id string) bool {
	if len(id) != 30 || id[:4] != "sub_" {
		return false
	}
	for i := 4; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// actor builds the vault's view of the caller and the tenant it acts in.
func actor(r *http.Request) (lethe.Actor, string, error) {
	k := principal(r.Context())
	a := lethe.Actor{KeyID: k.ID, Role: k.Role, RequestID: requestID(r.Context())}
	if p := r.Header.Get(headerPurpose); p != "" {
		if !lethe.ValidPurposeKey(p) {
			return a, "", lethe.Errorf(lethe.EINVALID, "%s must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter", headerPurpose)
		}
		a.Purpose = p
	}
	tenant := r.Header.Get(headerTenant)
	if k.Tenant != "" {
		// A key bound to a tenant acts in it alone, whatever it asks.
		if tenant != "" && tenant != k.Tenant {
			return a, "", lethe.Errorf(lethe.EFORBIDDEN, "key %s is bound to tenant %s", k.ID, k.Tenant)
		}
		return a, k.Tenant, nil
	}
	if tenant == "" {
		tenant = lethe.DefaultTenant
	}
	if err := lethe.ValidTenant(tenant); err != nil {
		return a, "", err
	}
	return a, tenant, nil
}

// subjectRequest returns the actor, tenant and {id} of a request about one
// subject, checking that the ID is shaped like a subject ID.
func subjectRequest(r *http.Request) (lethe.Actor, string, string, error) {
	a, tenant, err := actor(r)
	if err != nil {
		return a, "", "", err
	}
	id := r.PathValue("id")
	if !validSubjectID(id) {
		return a, "", "", lethe.Errorf(lethe.EINVALID, "malformed subject ID: expected sub_ and 26 characters")
	}
	return a, tenant, id, nil
}

// readOptions forces masked reads for roles that may only see masked values.
func readOptions(a lethe.Actor, fields []string, masked bool) lethe.ReadOptions {
	return lethe.ReadOptions{Fields: fields, Masked: masked || !a.Role.Can(lethe.PermSubjectsRead)}
}

type createSubjectRequest struct {
	Identifiers map[string]string `json:"identifiers"`
	Profile     json.RawMessage   `json:"profile,omitempty"`
}

func (s *Server) createSubject(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var req createSubjectRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := s.vault.CreateSubject(r.Context(), a, lethe.NewSubject{Tenant: tenant, Identifiers: req.Identifiers, Profile: req.Profile})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/subjects/"+v.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

type lookupRequest struct {
	Kind   string   `json:"kind"`
	Value  string   `json:"value"`
	Fields []string `json:"fields,omitempty"`
	Masked bool     `json:"masked,omitempty"`
}

// lookupSubject finds a subject by an identifier and reads it in one round
// trip. It is a POST so that the identifier stays out of URLs, proxies'
// access logs and browser histories.
func (s *Server) lookupSubject(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var req lookupRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := s.vault.LookupSubject(r.Context(), a, tenant, req.Kind, req.Value, readOptions(a, req.Fields, req.Masked))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) readSubject(w http.ResponseWriter, r *http.Request) error {
	a, tenant, id, err := subjectRequest(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var fields []string
	if f := q.Get("fields"); f != "" {
		fields = strings.Split(f, ",")
	}
	masked := false
	switch q.Get("masked") {
	case "", "false":
	case "true":
		masked = true
	default:
		return lethe.Errorf(lethe.EINVALID, "masked must be true or false")
	}
	v, err := s.vault.ReadSubject(r.Context(), a, tenant, id, readOptions(a, fields, masked))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type updateSubjectRequest struct {
	Profile     json.RawMessage    `json:"profile,omitempty"`
	Identifiers map[string]*string `json:"identifiers,omitempty"`
	Reason      string             `json:"reason"`
}

// updateSubject rectifies a subject: profile is a JSON merge patch
// (RFC 7396); an identifier set to null is removed.
func (s *Server) updateSubject(w http.ResponseWriter, r *http.Request) error {
	a, tenant, id, err := subjectRequest(r)
	if err != nil {
		return err
	}
	var req updateSubjectRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	c := lethe.ProfileChange{Patch: req.Profile, Reason: req.Reason, SetIdentifiers: map[string]string{}}
	for kind, v := range req.Identifiers {
		if v == nil {
			c.RemoveIdentifiers = append(c.RemoveIdentifiers, kind)
		} else {
			c.SetIdentifiers[kind] = *v
		}
	}
	v, err := s.vault.UpdateSubject(r.Context(), a, tenant, id, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type historyResponse struct {
	SubjectID string               `json:"subject_id"`
	Versions  []lethe.HistoryEntry `json:"versions"`
}

func (s *Server) subjectHistory(w http.ResponseWriter, r *http.Request) error {
	a, tenant, id, err := subjectRequest(r)
	if err != nil {
		return err
	}
	h, err := s.vault.History(r.Context(), a, tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, historyResponse{SubjectID: id, Versions: h})
	return nil
}

type erasureResponse struct {
	SubjectID string    `json:"subject_id,omitempty"`
	Tenant    string    `json:"tenant"`
	ErasedAt  time.Time `json:"erased_at"`
}

func (s *Server) eraseSubject(w http.ResponseWriter, r *http.Request) error {
	a, tenant, id, err := subjectRequest(r)
	if err != nil {
		return err
	}
	f, err := s.vault.EraseSubject(r.Context(), a, tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, erasureResponse{SubjectID: f.SubjectID, Tenant: f.Tenant, ErasedAt: f.ErasedAt})
	return nil
}

type eraseTenantRequest struct {
	Confirm string `json:"confirm"`
}

// eraseTenant erases a whole tenant. The body must repeat the tenant's name
// in confirm: a mistyped path cannot destroy a customer's data.
func (s *Server) eraseTenant(w http.ResponseWriter, r *http.Request) error {
	a, _, err := actor(r)
	if err != nil {
		return err
	}
	tenant := r.PathValue("tenant")
	if err := lethe.ValidTenant(tenant); err != nil {
		return err
	}
	if k := principal(r.Context()); k.Tenant != "" && k.Tenant != tenant {
		return lethe.Errorf(lethe.EFORBIDDEN, "key %s is bound to tenant %s", k.ID, k.Tenant)
	}
	var req eraseTenantRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Confirm != tenant {
		return lethe.Errorf(lethe.EINVALID, "to erase tenant %s, send {\"confirm\": %q}", tenant, tenant)
	}
	f, err := s.vault.EraseTenant(r.Context(), a, tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, erasureResponse{Tenant: f.Tenant, ErasedAt: f.ErasedAt})
	return nil
}
