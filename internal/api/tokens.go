package api

import (
	"net/http"

	"github.com/lethe-privacy/lethe"
)

type tokenizeRequest struct {
	SubjectID string               `json:"subject_id"`
	Tokens    []lethe.TokenRequest `json:"tokens"`
}

type tokenizeResponse struct {
	Tokens []lethe.Token `json:"tokens"`
}

func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var req tokenizeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if !validSubjectID(req.SubjectID) {
		return lethe.Errorf(lethe.EINVALID, "subject_id is not a subject ID: expected sub_ and 26 characters")
	}
	toks, err := s.vault.Tokenize(r.Context(), a, tenant, req.SubjectID, req.Tokens)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tokenizeResponse{Tokens: toks})
	return nil
}

type detokenizeRequest struct {
	Purpose string   `json:"purpose,omitempty"`
	Tokens  []string `json:"tokens"`
}

type detokenizeResponse struct {
	Results []lethe.Detokenized `json:"results"`
}

// detokenize answers a batch with one result per token. A request for a
// single token answers that token's outcome as the HTTP status, so simple
// clients can rely on 410 for an erased subject.
func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var req detokenizeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Purpose != "" {
		if !lethe.ValidPurposeKey(req.Purpose) {
			return lethe.Errorf(lethe.EINVALID, "purpose must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter")
		}
		if a.Purpose != "" && a.Purpose != req.Purpose {
			return lethe.Errorf(lethe.EINVALID, "purpose in the body and the %s header differ", headerPurpose)
		}
		a.Purpose = req.Purpose
	}
	res, err := s.vault.Detokenize(r.Context(), a, tenant, req.Tokens)
	if err != nil {
		return err
	}
	if len(res) == 1 {
		switch res[0].Status {
		case lethe.TokenGone:
			return lethe.Errorf(lethe.EGONE, "the token's subject was erased")
		case lethe.TokenNotFound:
			return lethe.Errorf(lethe.ENOTFOUND, "no such token")
		case lethe.TokenDenied:
			return lethe.Errorf(lethe.EFORBIDDEN, "purpose %s is not allowed for the token's subject", a.Purpose)
		}
	}
	writeJSON(w, http.StatusOK, detokenizeResponse{Results: res})
	return nil
}
