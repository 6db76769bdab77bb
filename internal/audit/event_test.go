package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TestAppendEventIsEncodingJSON: the hand-written encoder writes exactly
// the bytes encoding/json writes, so that either can make or check an
// entry.
func TestAppendEventIsEncodingJSON(t *testing.T) {
	for _, ev := range []lethe.AuditEvent{
		{},
		event(1),
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Action: "a", Resource: "audit:entries/0-65535"},
		{Time: time.Now(), Action: "<&>\"\\\n\t\u2028\u2029é\xff", KeyID: "k", Role: "dpo", RequestID: "r", Tenant: "t", SubjectID: "s", Purpose: "p", Fields: []string{"a", "b<c"}},
	} {
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEvent(nil, &ev); !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("subject.read", "sub_1", "email", int64(0))
	f.Add("<x>", "\x00\xff", "\u2028", int64(-1))
	f.Fuzz(func(t *testing.T, action, subject, field string, nanos int64) {
		ev := lethe.AuditEvent{Time: time.Unix(0, nanos).UTC(), Action: action, SubjectID: subject, Fields: []string{field, subject}, Tenant: action}
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Skip()
		}
		if got := appendEvent(nil, &ev); !bytes.Equal(got, want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	})
}

func BenchmarkEncodeEvents(b *testing.B) {
	evs := make([]lethe.AuditEvent, 100)
	for i := range evs {
		evs[i] = event(i)
	}
	b.Run("appendEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeEvents(evs)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := range evs {
				json.Marshal(&evs[i])
			}
		}
	})
}
