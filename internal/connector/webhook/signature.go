package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header that carries a body's signature, in both
// directions: Lethe's requests to a third party, and the third party's
// callbacks to Lethe.
const SignatureHeader = "Lethe-Signature"

// DefaultTolerance is how far a signature's time may be from the
// receiver's clock when VerifySignature is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// The errors VerifySignature returns.
var (
	// ErrSignature is a header that does not parse, or no signature in it
	// that matches the body.
	ErrSignature = errors.New("webhook signature invalid")
	// ErrSignatureExpired is a valid signature made too long ago, or too
	// far in the future: a replay, or a clock that is off.
	ErrSignatureExpired = errors.New("webhook signature expired")
)

// Sign returns the Lethe-Signature header value for body sent at now:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>". The
// time is signed with the body, so that a captured request cannot be
// replayed later than the receiver's tolerance.
func Sign(secret, body []byte, now time.Time) string {
	t := strconv.FormatInt(now.Unix(), 10)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac(secret, t, body))
}

func mac(secret []byte, t string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a Lethe-Signature header against body: one of
// its v1 signatures (a sender rotating its secret may send several) must
// be the HMAC of its time and body under secret, compared in constant
// time, and its time must be within tolerance of now, before or after
// (DefaultTolerance if tolerance is not positive). It returns
// ErrSignature or ErrSignatureExpired. Parts other than t and v1 are
// ignored, so that later versions can add schemes.
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var t string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignature
		}
		switch k {
		case "t":
			if t != "" {
				return ErrSignature
			}
			t = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrSignature
			}
			sigs = append(sigs, sig)
		}
	}
	if t == "" || len(sigs) == 0 {
		return ErrSignature
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil || sec < 0 || strconv.FormatInt(sec, 10) != t {
		return ErrSignature
	}
	want := mac(secret, t, body)
	match := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			match = true
		}
	}
	if !match {
		return ErrSignature
	}
	// The time is judged only once the signature holds, so that a forged
	// header learns nothing from which error it gets.
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureExpired
	}
	return nil
}

// IdempotencyKey returns the Idempotency-Key header of a request: the hex
// SHA-256 of the system name, the action, the subject ID and the
// caller's request ID, each followed by a NUL byte. A retry of one
// request carries the same key, so that the third party can answer it
// without acting twice.
func IdempotencyKey(system, action, subjectID, requestID string) string {
	h := sha256.New()
	for _, s := range []string{system, action, subjectID, requestID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
