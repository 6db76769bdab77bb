package api

import (
	"net/http"
	"strconv"

	"github.com/lethe-privacy/lethe"
)

type purposesResponse struct {
	Purposes []lethe.Purpose `json:"purposes"`
}

func (s *Server) listPurposes(w http.ResponseWriter, r *http.Request) error {
	ps := s.consent.Purposes()
	if ps == nil {
		ps = []lethe.Purpose{}
	}
	writeJSON(w, http.StatusOK, purposesResponse{Purposes: ps})
	return nil
}

type recordConsentRequest struct {
	Records []lethe.ConsentRecord `json:"records"`
}

type recordConsentResponse struct {
	Events []lethe.ConsentEvent `json:"events"`
}

func (s *Server) recordConsent(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var req recordConsentRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	for i, rec := range req.Records {
		if !subjectIDRE.MatchString(rec.SubjectID) {
			return lethe.Errorf(lethe.EINVALID, "record %d: malformed subject ID: expected sub_ and 26 characters", i+1)
		}
	}
	evs, err := s.consent.Record(r.Context(), a, tenant, req.Records)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, recordConsentResponse{Events: evs})
	return nil
}

// minRevision reads the optional min_revision parameter.
func minRevision(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, lethe.Errorf(lethe.EINVALID, "min_revision must be a ledger revision (a whole number)")
	}
	return n, nil
}

func (s *Server) checkConsent(w http.ResponseWriter, r *http.Request) error {
	_, tenant, err := actor(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	subject, purpose := q.Get("subject"), q.Get("purpose")
	if !subjectIDRE.MatchString(subject) {
		return lethe.Errorf(lethe.EINVALID, "query parameter subject must be a subject ID: sub_ and 26 characters")
	}
	if !purposeRE.MatchString(purpose) {
		return lethe.Errorf(lethe.EINVALID, "query parameter purpose must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter")
	}
	min, err := minRevision(q.Get("min_revision"))
	if err != nil {
		return err
	}
	d, err := s.consent.Check(r.Context(), tenant, subject, purpose, min)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

type batchCheckRequest struct {
	Purpose     string   `json:"purpose"`
	Subjects    []string `json:"subjects"`
	MinRevision uint64   `json:"min_revision,omitempty"`
}

func (s *Server) checkConsentBatch(w http.ResponseWriter, r *http.Request) error {
	_, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var req batchCheckRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if !purposeRE.MatchString(req.Purpose) {
		return lethe.Errorf(lethe.EINVALID, "purpose must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter")
	}
	if len(req.Subjects) > lethe.ConsentBatchLimit {
		return lethe.Errorf(lethe.EINVALID, "at most %d subjects per batch, not %d", lethe.ConsentBatchLimit, len(req.Subjects))
	}
	for i, id := range req.Subjects {
		if !subjectIDRE.MatchString(id) {
			return lethe.Errorf(lethe.EINVALID, "subjects[%d] is not a subject ID", i)
		}
	}
	b, err := s.consent.CheckBatch(r.Context(), tenant, req.Purpose, req.Subjects, req.MinRevision)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

type consentHistoryResponse struct {
	SubjectID string               `json:"subject_id"`
	Events    []lethe.ConsentEvent `json:"events"`
}

func (s *Server) consentHistory(w http.ResponseWriter, r *http.Request) error {
	a, tenant, id, err := subjectRequest(r)
	if err != nil {
		return err
	}
	evs, err := s.consent.History(r.Context(), a, tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, consentHistoryResponse{SubjectID: id, Events: evs})
	return nil
}
