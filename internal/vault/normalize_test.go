package vault

import (
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, kind, value, want string
	}{
		{"email", "email", "jane.doe@example.com", "jane.doe@example.com"},
		{"email case and space", "email", "  Jane.Doe@Example.COM\n", "jane.doe@example.com"},
		{"email plus", "email", "jane+news@example.com", "jane+news@example.com"},
		{"email unicode case", "email", "ÉMILIE@Example.fr", "émilie@example.fr"},
		{"email nfc", "email", "e\u0301milie@example.fr", "\u00e9milie@example.fr"},
		{"email 254 bytes", "email", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"},
		{"phone e164", "phone", "+442079460958", "+442079460958"},
		{"phone spaced", "phone", " +44 20 7946 0958 ", "+442079460958"},
		{"phone punctuation", "phone", "+1 (415) 555-0100", "+14155550100"},
		{"phone national prefix", "phone", "+44 (0)20 7946 0958", "+442079460958"},
		{"phone italy leading zero", "phone", "+39 06 1234 5678", "+390612345678"},
		{"login", "login", "  Jane_Doe ", "jane_doe"},
		{"login unicode", "login", "ÅSA", "åsa"},
		{"login nfc", "login", "A\u030asa", "\u00e5sa"},
		{"other keeps case", "shop_customer_id", " C-12345 ", "C-12345"},
		{"other nfc", "shop_customer_id", "e\u0301", "\u00e9"},
		{"other 1024 bytes", "ext_id", strings.Repeat("x", 1024), strings.Repeat("x", 1024)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.kind, tt.value)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			again, err := Normalize(tt.kind, got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: got %q, %v", again, err)
			}
		})
	}
}

func TestNormalizeInvalid(t *testing.T) {
	tests := []struct {
		name, kind, value, reason string
	}{
		{"bad kind", "Email", "a@example.com", ""},
		{"empty kind", "", "x", ""},
		{"email invalid utf8", "email", "a\xff@example.com", reasonUTF8},
		{"email display name", "email", "Jane <jane@example.com>", reasonEmail},
		{"email brackets", "email", "<jane@example.com>", reasonEmail},
		{"email no at", "email", "jane.example.com", reasonEmail},
		{"email two addresses", "email", "a@example.com, b@example.com", reasonEmail},
		{"email quoted local", "email", `"jane doe"@example.com`, reasonEmail},
		{"email comment", "email", "jane@example.com (Jane)", reasonEmail},
		{"email empty", "email", "  ", reasonEmail},
		{"email control", "email", "ja\x00ne@example.com", reasonControl},
		{"email too long", "email", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", reasonEmailLen},
		{"phone national", "phone", "020 7946 0958", reasonPhoneIntl},
		{"phone empty", "phone", "", reasonPhoneIntl},
		{"phone plus only", "phone", "+", reasonPhone},
		{"phone too short", "phone", "+44 12", reasonPhone},
		{"phone too long", "phone", "+44 20 7946 0958 1234 5678", reasonPhone},
		{"phone bad country", "phone", "+999 1234 5678", reasonPhone},
		{"phone letters", "phone", "+hello", reasonPhone},
		{"phone extension", "phone", "+44 20 7946 0958 ext. 12", reasonPhoneExt},
		{"phone invalid utf8", "phone", "+44\xff", reasonUTF8},
		{"login empty", "login", " \t ", reasonLoginLen},
		{"login too long", "login", strings.Repeat("a", 257), reasonLoginLen},
		{"login too long after lower", "login", strings.Repeat("Ⱥ", 100), reasonLoginLen},
		{"login control", "login", "jane\x07", reasonControl},
		{"login c1 control", "login", "ja\u0085ne", reasonControl},
		{"login invalid utf8", "login", "\xc3", reasonUTF8},
		{"other empty", "shop_customer_id", "", reasonOtherLen},
		{"other too long", "shop_customer_id", strings.Repeat("x", 1025), reasonOtherLen},
		{"other control", "shop_customer_id", "a\nb", reasonControl},
		{"other invalid utf8", "shop_customer_id", "\xed\xa0\x80", reasonUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.kind, tt.value)
			if err == nil {
				t.Fatal("got nil error, want EINVALID")
			}
			if got != "" {
				t.Errorf("got a value with the error, want \"\"")
			}
			if code := lethe.ErrorCode(err); code != lethe.EINVALID {
				t.Fatalf("code: got %s, want %s", code, lethe.EINVALID)
			}
			msg := lethe.ErrorMessage(err)
			if tt.reason != "" {
				if want := tt.kind + " " + tt.reason; msg != want {
					t.Fatalf("message: got %q, want %q", msg, want)
				}
			}
			if len(tt.value) >= 4 && strings.Contains(msg, strings.TrimSpace(tt.value)) {
				t.Fatal("the message contains the value")
			}
		})
	}
}

func TestNormalizePhoneMessage(t *testing.T) {
	_, err := Normalize("phone", "07946 0958")
	if got, want := lethe.ErrorMessage(err), "phone must be in international form, like +44 20 7946 0958"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
