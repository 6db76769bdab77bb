package api

import (
	"net/http"
	"strings"
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

// tokenChars is the length of a token after its prefix: 45 bytes in
// base64url without padding (see internal/vault's token format).
const tokenChars = 60

// validToken reports whether t has the form of a token: tok_ or tokd_ and
// 60 characters of base64url. Whether it is one of the tenant's tokens is
// the vault's to say.
func validToken(t string) bool {
	rest, ok := strings.CutPrefix(t, "tok_")
	if !ok {
		if rest, ok = strings.CutPrefix(t, "tokd_"); !ok {
			return false
		}
	}
	if len(rest) != tokenChars {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
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
	ref := r.PathValue("ref")
	if !validSubjectID(ref) && !validToken(ref) {
		return lethe.Errorf(lethe.EINVALID, "malformed ref: expected a subject ID (sub_ and 26 characters) or a token (tok_ or tokd_ and 60 characters)")
	}
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
