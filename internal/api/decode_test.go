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

// FuzzDecodeConsentCSV: any body is either refused with EINVALID (or
// ETOOLARGE) or decoded into records and per-row rejections that name
// rows that exist.
func FuzzDecodeConsentCSV(f *testing.F) {
	f.Add("subject_id,purpose,kind,at\nsub_aaaaaaaaaaaaaaaaaaaaaaaaaa,newsletter,grant,2026-01-01T00:00:00Z\n")
	f.Add("subject_id,kind\n\"x\ny\",grant\n")
	f.Add("\ufeffsubject_id,kind,expires_at\na,b,c,d\n")
	f.Fuzz(func(t *testing.T, body string) {
		recs, rejected, err := decodeConsentCSV(strings.NewReader(body))
		if err != nil {
			if c := lethe.ErrorCode(err); c != lethe.EINVALID && c != lethe.ETOOLARGE {
				t.Fatalf("error code %s", c)
			}
			return
		}
		for _, r := range rejected {
			if r.Row < 1 || r.Row > len(recs) {
				t.Fatalf("rejected row %d of %d", r.Row, len(recs))
			}
		}
	})
}

func TestValidSubjectID(t *testing.T) {
	for id, want := range map[string]bool{
		"sub_abcdefghijklmnopqrstuvwxyz":  true,
		"sub_234567abcdefghijklmnopqrst":  true,
		"sub_abcdefghijklmnopqrstuvwxy":   false, // 25
		"sub_abcdefghijklmnopqrstuvwxyza": false, // 27
		"sub_abcdefghijklmnopqrstuvwxy1":  false, // not base32
		"sub_abcdefghijklmnopqrstuvwxy8":  false,
		"sub_Abcdefghijklmnopqrstuvwxyz":  false,
		"sux_abcdefghijklmnopqrstuvwxyz":  false,
		"":                                false,
	} {
		if got := validSubjectID(id); got != want {
			t.Errorf("%q: %v, want %v", id, got, want)
		}
	}
}
