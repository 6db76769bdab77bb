package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
)

type requestIDKey struct{}

// requestID returns the ID the middleware gave the request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID accepts a caller's X-Request-Id only if it is short and
// plain, so that it cannot smuggle data or newlines into logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

// statusWriter records what the access log and metrics need.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	route  string // the route pattern; never the raw path
	keyID  string
	code   string // domain error code of a problem answer
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withRequest tags each request with an ID, recovers panics without their
// values reaching the caller, and writes the access log line and metrics.
func (s *Server) withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &statusWriter{ResponseWriter: w, route: "unmatched"}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value may hold request data: log only that a
				// panic happened, where, and the request ID.
				s.log.ErrorContext(r.Context(), "panic serving request", "request_id", id, "route", sw.route)
				if sw.status == 0 {
					writeError(sw, r, lethe.Errorf(lethe.EINTERNAL, "internal error"))
				}
			}
			elapsed := time.Since(start)
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.observe(r.Method, sw.route, status, elapsed)
			attrs := []any{
				"request_id", id, "method", r.Method, "route", sw.route,
				"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000, "bytes", sw.bytes,
			}
			if sw.keyID != "" {
				attrs = append(attrs, "key_id", sw.keyID)
			}
			if sw.code != "" {
				attrs = append(attrs, "code", sw.code)
			}
			s.log.InfoContext(r.Context(), "request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}
