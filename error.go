package lethe

import (
	"errors"
	"fmt"
)

// Error codes. The set is closed: internal/api maps each one to an HTTP
// status, and anything that is not a *Error is reported as EINTERNAL.
const (
	ECONFLICT     = "conflict"     // the operation conflicts with existing state
	EFORBIDDEN    = "forbidden"    // authenticated, but the role lacks the permission
	EGONE         = "gone"         // the resource existed and was erased
	EINTERNAL     = "internal"     // a fault on our side; details go to the log only
	EINVALID      = "invalid"      // the request is malformed or fails validation
	ENOTFOUND     = "not_found"    // no such resource
	ERATELIMIT    = "rate_limited" // too many requests for this principal
	ETOOLARGE     = "too_large"    // the request body exceeds the limit
	EUNAUTHORIZED = "unauthorized" // no valid credentials
	EUNAVAILABLE  = "unavailable"  // a dependency (store, audit log) cannot serve now
	EUNSUPPORTED  = "unsupported"  // method or media type not supported
)

// Codes lists every error code, for documentation and tests.
var Codes = []string{
	ECONFLICT, EFORBIDDEN, EGONE, EINTERNAL, EINVALID, ENOTFOUND,
	ERATELIMIT, ETOOLARGE, EUNAUTHORIZED, EUNAVAILABLE, EUNSUPPORTED,
}

// Error is Lethe's domain error. Message is shown to API callers, so it must
// never contain a personal-data value: name IDs and fields, never contents.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("lethe error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a
// nil err, and EINTERNAL for any other error.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, and
// "internal error" for any other error, so that driver or system details
// never reach a caller.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
