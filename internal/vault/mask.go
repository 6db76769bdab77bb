package vault

import (
	"strconv"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/nyaruka/phonenumbers"
)

// Mask returns value with most of it hidden, for reads that may see less
// than the whole value (a support agent confirming "j***@example.com"):
//
//   - "email": the local part masked as below, the domain kept:
//     jane.doe@example.com gives j***@example.com.
//   - "phone" in international form: the '+' and country code and the last
//     three digits kept, one '*' for each digit between: +442079460958
//     gives +44*******958. A number too short to keep anything hidden is
//     masked as below.
//   - anything else: the first character and "***", or just "***" if the
//     value has two characters or fewer, so that a short value is never
//     given away.
//
// Mask counts characters (runes), not bytes, and never fails; pass it a
// normalised value. It is safe for concurrent use.
func Mask(kind, value string) string {
	switch kind {
	case lethe.KindEmail:
		if at := strings.LastIndexByte(value, '@'); at >= 0 {
			return maskRunes(value[:at]) + value[at:]
		}
	case lethe.KindPhone:
		if m, ok := maskPhone(value); ok {
			return m
		}
	}
	return maskRunes(value)
}

func maskRunes(s string) string {
	r := []rune(s)
	if len(r) <= 2 {
		return "***"
	}
	return string(r[0]) + "***"
}

// maskPhone masks an E.164-like number, keeping '+', the country code and
// the last three digits, and reports false unless at least four digits stay
// hidden.
func maskPhone(v string) (string, bool) {
	const keepLast, minHidden = 3, 4
	if !strings.HasPrefix(v, "+") {
		return "", false
	}
	digits := v[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	cc := 2 // without a known country code, keep at most "+" and two digits
	if num, err := phonenumbers.Parse(v, "ZZ"); err == nil {
		if c := strconv.Itoa(int(num.GetCountryCode())); num.GetCountryCode() > 0 && strings.HasPrefix(digits, c) {
			cc = len(c)
		}
	}
	hidden := len(digits) - cc - keepLast
	if hidden < minHidden {
		return "", false
	}
	return "+" + digits[:cc] + strings.Repeat("*", hidden) + digits[len(digits)-keepLast:], true
}
