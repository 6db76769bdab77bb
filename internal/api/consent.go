package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

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
		if !validSubjectID(rec.SubjectID) {
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
	if !validSubjectID(subject) {
		return lethe.Errorf(lethe.EINVALID, "query parameter subject must be a subject ID: sub_ and 26 characters")
	}
	if !lethe.ValidPurposeKey(purpose) {
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
	if !lethe.ValidPurposeKey(req.Purpose) {
		return lethe.Errorf(lethe.EINVALID, "purpose must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter")
	}
	if len(req.Subjects) > lethe.ConsentBatchLimit {
		return lethe.Errorf(lethe.EINVALID, "at most %d subjects per batch, not %d", lethe.ConsentBatchLimit, len(req.Subjects))
	}
	for i, id := range req.Subjects {
		if !validSubjectID(id) {
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

// streamHeartbeat is how often the stream says where the ledger is when
// nothing happens, so that a client can tell a quiet ledger from a broken
// connection.
const streamHeartbeat = 250 * time.Millisecond

// consentStream serves the ledger's events of the caller's tenant as
// server-sent events: each event as `event: consent` with the revision as
// its id, and, whenever the stream has caught up and every 250 ms after,
// `event: revision` with the revision the stream has reached. A client
// resumes with ?after= (or Last-Event-ID).
func (s *Server) consentStream(w http.ResponseWriter, r *http.Request) error {
	_, tenant, err := actor(r)
	if err != nil {
		return err
	}
	v := r.URL.Query().Get("after")
	if v == "" {
		v = r.Header.Get("Last-Event-ID")
	}
	after, err := minRevision(v)
	if err != nil {
		return lethe.Errorf(lethe.EINVALID, "after must be a ledger revision (a whole number)")
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// A stream ends when its client goes or the server shuts down:
	// graceful shutdown waits for handlers, and this one never returns
	// on its own.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	var buf []byte
	for {
		evs, next, err := s.consent.Follow(ctx, tenant, after, lethe.ConsentEventsLimit, streamHeartbeat)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Headers are sent: end the stream; the client reconnects.
			s.log.Warn("consent stream ended", "err", err.Error())
			return nil
		}
		buf = buf[:0]
		for i := range evs {
			b, _ := json.Marshal(&evs[i])
			buf = fmt.Appendf(buf, "id: %d\nevent: consent\ndata: %s\n\n", evs[i].Revision, b)
		}
		after = next
		if len(evs) < lethe.ConsentEventsLimit {
			buf = fmt.Appendf(buf, "event: revision\ndata: {\"revision\":%d}\n\n", after)
		}
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.Write(buf); err != nil {
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}
