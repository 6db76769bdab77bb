package api

import (
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
)

// forgottenResponse answers a forget-list check about a subject that is
// known and not forgotten.
type forgottenResponse struct {
	Ref       string `json:"ref"`
	Forgotten bool   `json:"forgotten"`
}

// forgottenProblem is the 410 answer of a forget-list check: the usual
// problem (code gone), with the ref, forgotten: true and the time of the
// erasure as extension members, so that a recipient reads the same two
// fields as in a 200 answer. It names neither the subject behind a token
// (which would let its holder link two tokens of one person) nor whether
// the subject or its whole tenant was erased.
type forgottenProblem struct {
	Problem
	Ref       string    `json:"ref"`
	Forgotten bool      `json:"forgotten"`
	ErasedAt  time.Time `json:"erased_at"`
}

// checkForgotten tells a third party (a recipient) whether the subject a
// subject ID or a token stands for was forgotten, so that it erases its own
// copy. It answers IDs and a time, never a value; the vault audits the
// check.
func (s *Server) checkForgotten(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	// The ref's form is the vault's to check, as it knows the token format:
	// EINVALID (400) for a malformed one, in words that do not repeat it.
	ref := r.PathValue("ref")
	f, err := s.vault.CheckForgotten(r.Context(), a, tenant, ref)
	if err != nil {
		return err
	}
	if f == nil {
		writeJSON(w, http.StatusOK, forgottenResponse{Ref: ref})
		return nil
	}
	detail := "the subject was erased and is on the forget list: erase every copy of its data"
	if !validSubjectID(ref) {
		detail = "the token's subject was erased and is on the forget list: erase every copy of its data"
	}
	p := newProblem(r, http.StatusGone, lethe.EGONE, detail)
	writeProblemBody(w, p, forgottenProblem{Problem: p, Ref: ref, Forgotten: true, ErasedAt: f.ErasedAt})
	return nil
}
