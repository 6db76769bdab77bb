package api

import (
	"encoding/json"
	"net/http"

	"github.com/lethe-privacy/lethe"
)

// statuses maps each domain error code to its HTTP status. This is the only
// place in Lethe where that mapping exists.
var statuses = map[string]int{
	lethe.ECONFLICT:     http.StatusConflict,
	lethe.EFORBIDDEN:    http.StatusForbidden,
	lethe.EGONE:         http.StatusGone,
	lethe.EINTERNAL:     http.StatusInternalServerError,
	lethe.EINVALID:      http.StatusBadRequest,
	lethe.ENOTFOUND:     http.StatusNotFound,
	lethe.ERATELIMIT:    http.StatusTooManyRequests,
	lethe.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	lethe.EUNAUTHORIZED: http.StatusUnauthorized,
	lethe.EUNAVAILABLE:  http.StatusServiceUnavailable,
	lethe.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
}

// Problem is an RFC 9457 problem details body. Code is Lethe's domain error
// code; RequestID lets an operator find the matching log line.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
}

// problemType is the type URI of a problem with the given code. A URN keeps
// it stable without promising a dereferenceable page.
func problemType(code string) string { return "urn:lethe:error:" + code }

// writeError answers with the problem for err. Only lethe.Error messages reach
// the caller; any other error is reported as "internal error" and logged by
// the caller of writeError.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := lethe.ErrorCode(err)
	status, ok := statuses[code]
	if !ok {
		code, status = lethe.EINTERNAL, http.StatusInternalServerError
	}
	writeProblem(w, r, status, code, lethe.ErrorMessage(err))
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	writeProblemBody(w, newProblem(r, status, code, detail), nil)
}

// newProblem returns the problem for status and code.
func newProblem(r *http.Request, status int, code, detail string) Problem {
	return Problem{
		Type:      problemType(code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Code:      code,
		RequestID: requestID(r.Context()),
	}
}

// writeProblemBody answers with problem p, or, if body is not nil, with
// body: a struct that embeds p and adds extension members (RFC 9457
// section 3.2).
func writeProblemBody(w http.ResponseWriter, p Problem, body any) {
	if st, ok := w.(*statusWriter); ok {
		st.code = p.Code
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	if body == nil {
		body = p
	}
	_ = json.NewEncoder(w).Encode(body)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
