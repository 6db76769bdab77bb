package vault

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/unicode/norm"
)

// Reasons a value fails normalisation. Each error message is the kind and
// the reason, like "phone must be in international form, like +44 20 7946
// 0958", so it names the kind and never the value; the fuzz test checks
// every message is one of these.
const (
	reasonUTF8      = "must be valid UTF-8"
	reasonControl   = "must not contain control characters"
	reasonEmail     = "must be a bare email address, like name@example.com"
	reasonEmailLen  = "must be at most 254 bytes"
	reasonPhoneIntl = "must be in international form, like +44 20 7946 0958"
	reasonPhone     = "must be a possible phone number in international form, like +44 20 7946 0958"
	reasonPhoneExt  = "must not have an extension"
	reasonLoginLen  = "must be 1 to 256 bytes"
	reasonOtherLen  = "must be 1 to 1024 bytes"
)

// normalizeReasons lists every reason, for the tests.
var normalizeReasons = []string{
	reasonUTF8, reasonControl, reasonEmail, reasonEmailLen, reasonPhoneIntl,
	reasonPhone, reasonPhoneExt, reasonLoginLen, reasonOtherLen,
}

const (
	maxEmail = 254 // RFC 5321 limits a forward path to 256 octets, 254 without the brackets
	maxPhone = 64  // generous for "+44 (0)20 7946 0958" and the like; phonenumbers allows 250
	maxLogin = 256
	maxOther = 1024
)

// Normalize returns the canonical form of an identifier value of the given
// kind, the form that is blind-indexed and sealed, so that two spellings of
// one identifier find the same subject:
//
//   - "email": surrounding space trimmed; it must be exactly one bare
//     address as net/mail parses it (no display name, no angle brackets, no
//     comments); the whole address is lower-cased and put in Unicode NFC;
//     at most 254 bytes.
//   - "phone": it must start with '+' (international form) and be a
//     possible number for its country code; the result is E.164, like
//     +442079460958. Extensions are refused.
//   - "login": trimmed, lower-cased, NFC; 1 to 256 bytes.
//   - any other kind (app-defined, like shop_customer_id): trimmed, NFC,
//     case kept; 1 to 1024 bytes.
//
// Every kind refuses invalid UTF-8 and control characters. Errors are
// *lethe.Error with code EINVALID whose message names the kind and never the
// value; an invalid kind name is EINVALID too. Normalize is idempotent:
// normalising its result gives the result again. It is safe for concurrent
// use.
func Normalize(kind, value string) (string, error) {
	if err := lethe.ValidIdentifierKind(kind); err != nil {
		return "", err
	}
	if !utf8.ValidString(value) {
		return "", invalid(kind, reasonUTF8)
	}
	value = strings.TrimSpace(value)
	switch kind {
	case lethe.KindEmail:
		return normalizeEmail(value)
	case lethe.KindPhone:
		return normalizePhone(value)
	case lethe.KindLogin:
		if len(value) > 4*maxLogin { // bound the work before lower-casing
			return "", invalid(kind, reasonLoginLen)
		}
		return normalizeText(kind, strings.ToLower(value), maxLogin, reasonLoginLen)
	default:
		return normalizeText(kind, value, maxOther, reasonOtherLen)
	}
}

func invalid(kind, reason string) error {
	return lethe.Errorf(lethe.EINVALID, "%s %s", kind, reason)
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// normalizeText puts v in NFC and checks its length and characters.
func normalizeText(kind, v string, maxLen int, reasonLen string) (string, error) {
	// Bound the work first. Lower-casing and NFC shrink text at most
	// threefold (a Kelvin sign to "k", Hangul jamo to a syllable), so
	// longer input could never fit.
	if len(v) > 4*maxLen {
		return "", invalid(kind, reasonLen)
	}
	v = norm.NFC.String(v)
	if hasControl(v) {
		return "", invalid(kind, reasonControl)
	}
	if len(v) == 0 || len(v) > maxLen {
		return "", invalid(kind, reasonLen)
	}
	return v, nil
}

func normalizeEmail(v string) (string, error) {
	const kind = lethe.KindEmail
	if len(v) > 4*maxEmail {
		return "", invalid(kind, reasonEmailLen)
	}
	if hasControl(v) {
		return "", invalid(kind, reasonControl)
	}
	// Lower-case first so that what is checked below is what is returned.
	v = norm.NFC.String(strings.ToLower(v))
	if len(v) > maxEmail {
		return "", invalid(kind, reasonEmailLen)
	}
	// ParseAddress accepts display names, <brackets>, comments and quoted
	// local parts; requiring its Address to be the whole input keeps only
	// bare addresses, which also makes the result parse to itself again.
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || a.Address != v {
		return "", invalid(kind, reasonEmail)
	}
	return v, nil
}

func normalizePhone(v string) (string, error) {
	const kind = lethe.KindPhone
	if !strings.HasPrefix(v, "+") {
		return "", invalid(kind, reasonPhoneIntl)
	}
	if len(v) > maxPhone || hasControl(v) {
		return "", invalid(kind, reasonPhone)
	}
	// With a leading '+' the region is taken from the number; "ZZ" (unknown)
	// makes sure no default region is ever guessed.
	num, err := phonenumbers.Parse(v, "ZZ")
	if err != nil {
		return "", invalid(kind, reasonPhone)
	}
	if num.GetExtension() != "" {
		return "", invalid(kind, reasonPhoneExt)
	}
	// IsPossibleNumber checks the length for the country; IsValidNumber
	// would also check the number ranges in the library's metadata, which
	// lags behind numbering plans and would refuse real people's new numbers.
	if !phonenumbers.IsPossibleNumber(num) {
		return "", invalid(kind, reasonPhone)
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// A number that is possible but not valid may format to an E.164 string
	// that parses as another number (+44 (0)00… gives +4400…, which loses
	// its "national prefix" when parsed again). Accept only numbers whose
	// E.164 form is stable, so that Normalize is idempotent and a lookup by
	// the normalised value finds the same subject.
	// Input already in E.164 form was parsed as such above.
	if v == e164 {
		return e164, nil
	}
	again, err := phonenumbers.Parse(e164, "ZZ")
	if err != nil || !phonenumbers.IsPossibleNumber(again) || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", invalid(kind, reasonPhone)
	}
	return e164, nil
}
