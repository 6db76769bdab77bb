package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// decodeJSON reads the request body into v: exactly one JSON object, with no
// unknown fields, no larger than the server's body limit (the middleware
// wraps the body in http.MaxBytesReader). Errors are lethe.Errors that name
// the offending field or byte offset but never echo a value, since a value
// may be personal data.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return lethe.Errorf(lethe.EUNSUPPORTED, "request body must be application/json")
		}
	}
	return decodeBody(r.Body, v)
}

// decodeBody is decodeJSON without the media type check; the fuzz target
// drives it directly.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return lethe.Errorf(lethe.EINVALID, "request body must hold a single JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		invalidUT *json.InvalidUnmarshalError
		timeErr   *time.ParseError
	)
	switch {
	case errors.Is(err, io.EOF):
		return lethe.Errorf(lethe.EINVALID, "request body is empty: send a JSON object")
	case errors.As(err, &tooLarge):
		return lethe.Errorf(lethe.ETOOLARGE, "request body exceeds %d bytes", tooLarge.Limit)
	case errors.As(err, &syntax):
		return lethe.Errorf(lethe.EINVALID, "malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return lethe.Errorf(lethe.EINVALID, "malformed JSON: body ends early")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return lethe.Errorf(lethe.EINVALID, "request body must be a JSON %s", jsonKind(typeErr.Type.Kind().String()))
		}
		return lethe.Errorf(lethe.EINVALID, "field %q must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &timeErr):
		// The parse error quotes the value, so it is not passed on.
		return lethe.Errorf(lethe.EINVALID, "a time field is not in RFC 3339 form (like 2030-01-31T00:00:00Z)")
	case errors.As(err, &invalidUT):
		return fmt.Errorf("decode request: %w", err) // a programming error: internal
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields; the field
		// name is the caller's own key, quoted by the decoder.
		return lethe.Errorf(lethe.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return lethe.Errorf(lethe.EINVALID, "malformed JSON request body")
	}
}

// jsonKind names a Go kind the way a JSON user would.
func jsonKind(kind string) string {
	switch kind {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "string":
		return "string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	}
	return "value of another type"
}
