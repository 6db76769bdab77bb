package api

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// FuzzDecodeBody checks that no input makes the decoder panic, that every
// failure is a client error (never internal), and that an error never
// echoes the body's values.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"x","role":"service"}`, `{"name":"x","role":"service","expires_at":"2030-01-01T00:00:00Z"}`,
		``, `{`, `[]`, `null`, `{"name":1}`, `{"a":"b"}`, `{"name":"x"} {}`, `"\ud800"`, `{"expires_at":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			Name      string     `json:"name"`
			Role      string     `json:"role"`
			ExpiresAt *time.Time `json:"expires_at"`
		}
		err := decodeBody(strings.NewReader(string(body)), &v)
		if err == nil {
			return
		}
		if code := lethe.ErrorCode(err); code != lethe.EINVALID {
			t.Fatalf("got code %q, want %q", code, lethe.EINVALID)
		}
		msg := lethe.ErrorMessage(err)
		if len(msg) > 200 {
			t.Fatalf("message too long (%d bytes)", len(msg))
		}
	})
}
