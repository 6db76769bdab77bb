package vault

import "testing"

func TestMask(t *testing.T) {
	tests := []struct {
		name, kind, value, want string
	}{
		{"email", "email", "jane.doe@example.com", "j***@example.com"},
		{"email unicode", "email", "émilie@example.fr", "é***@example.fr"},
		{"email short local", "email", "jo@example.com", "***@example.com"},
		{"email one-char local", "email", "j@example.com", "***@example.com"},
		{"email no at", "email", "janedoe", "j***"},
		{"phone uk", "phone", "+442079460958", "+44*******958"},
		{"phone us", "phone", "+14155550100", "+1*******100"},
		{"phone ireland", "phone", "+353861234567", "+353******567"},
		{"phone too short", "phone", "+4412345", "+***"},
		{"phone not e164", "phone", "020 7946 0958", "0***"},
		{"phone unknown country", "phone", "+999123456789", "+99*******789"},
		{"login", "login", "jane", "j***"},
		{"other", "shop_customer_id", "C-12345", "C***"},
		{"two runes", "login", "jö", "***"},
		{"one rune", "login", "j", "***"},
		{"empty", "login", "", "***"},
		{"multibyte first", "login", "日本語", "日***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mask(tt.kind, tt.value); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
