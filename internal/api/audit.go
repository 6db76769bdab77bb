package api

import (
	"net/http"
	"strconv"

	"github.com/lethe-privacy/lethe"
)

// auditPageMax bounds one page of GET /v1/audit: each event carries an
// inclusion proof, built from the tree files.
const auditPageMax = 1000

func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	subject := q.Get("subject")
	if !validSubjectID(subject) {
		return lethe.Errorf(lethe.EINVALID, "query parameter subject must be a subject ID: sub_ and 26 characters")
	}
	query := lethe.AuditQuery{Tenant: tenant, SubjectID: subject, Limit: 100}
	if v := q.Get("after"); v != "" {
		if query.After, err = strconv.ParseUint(v, 10, 64); err != nil {
			return lethe.Errorf(lethe.EINVALID, "query parameter after must be a log index (a whole number)")
		}
	}
	if v := q.Get("limit"); v != "" {
		if query.Limit, err = strconv.Atoi(v); err != nil || query.Limit < 1 || query.Limit > auditPageMax {
			return lethe.Errorf(lethe.EINVALID, "query parameter limit must be 1 to %d", auditPageMax)
		}
	}
	b, err := s.audit.SubjectEvents(r.Context(), a, query)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}
