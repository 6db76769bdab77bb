package audit

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
)

// appendEvent appends ev encoded exactly as encoding/json encodes a
// lethe.AuditEvent (a test holds the two equal), without reflection: a
// detokenisation of 100 subjects' tokens logs 100 events, and encoding
// them is a visible part of its cost.
func appendEvent(dst []byte, ev *lethe.AuditEvent) []byte {
	dst = append(dst, `{"time":"`...)
	dst = ev.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","action":`...)
	dst = appendString(dst, ev.Action)
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, ev.Outcome)
	dst = append(dst, `,"key_id":`...)
	dst = appendString(dst, ev.KeyID)
	dst = append(dst, `,"role":`...)
	dst = appendString(dst, string(ev.Role))
	if ev.RequestID != "" {
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, ev.RequestID)
	}
	dst = append(dst, `,"tenant":`...)
	dst = appendString(dst, ev.Tenant)
	if ev.SubjectID != "" {
		dst = append(dst, `,"subject_id":`...)
		dst = appendString(dst, ev.SubjectID)
	}
	if ev.Purpose != "" {
		dst = append(dst, `,"purpose":`...)
		dst = appendString(dst, ev.Purpose)
	}
	if len(ev.Fields) > 0 {
		dst = append(dst, `,"fields":[`...)
		for i, f := range ev.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, f)
		}
		dst = append(dst, ']')
	}
	if ev.Resource != "" {
		dst = append(dst, `,"resource":`...)
		dst = appendString(dst, ev.Resource)
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string. The IDs and names in events are
// plain ASCII and are copied as they are; anything else is left to
// encoding/json, so that the escaping (of <, >, &, control characters,
// invalid UTF-8, U+2028 and U+2029) stays exactly its own.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
