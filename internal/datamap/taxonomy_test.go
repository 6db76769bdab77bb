package datamap

import (
	"slices"
	"testing"
)

func TestTaxonomyKnown(t *testing.T) {
	for _, tc := range []struct {
		key  string
		use  bool
		want bool
	}{
		{key: "user", want: true},
		{key: "user.contact.email", want: true},
		{key: "user.name", want: true},
		{key: "user.name.first", want: true},
		{key: "user.device.ip_address", want: true},
		{key: "user.financial.bank_account", want: true},
		{key: "user.health.symptons", want: true}, // sic: fideslang's spelling
		{key: "user.biometric", want: true},       // deprecated, still known
		{key: "system.operations", want: true},
		{key: "user.contact.emial", want: false},
		{key: "User.Name", want: false},
		{key: "", want: false},
		{key: "marketing.advertising", use: true, want: true},
		{key: "essential.service", use: true, want: true},
		{key: "essential.service.payment_processing", use: true, want: true},
		{key: "personalize.profiling", use: true, want: true},
		{key: "train_ai_system", use: true, want: true},
		{key: "user.contact.email", use: true, want: false},
		{key: "marketing.advertisement", use: true, want: false},
	} {
		name := tc.key
		if tc.use {
			name = "use/" + name
		}
		t.Run(name, func(t *testing.T) {
			got := KnownCategory(tc.key)
			if tc.use {
				got = KnownUse(tc.key)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTaxonomySuggest(t *testing.T) {
	for _, tc := range []struct {
		key  string
		use  bool
		want string
	}{
		{key: "user.contact.emial", want: "user.contact.email"},
		{key: "user.nmae", want: "user.name"},
		{key: "user.contact.phone_numbr", want: "user.contact.phone_number"},
		{key: "user.device.ipaddress", want: "user.device.ip_address"},
		{key: "user.finacial.bank_account", want: "user.financial.bank_account"},
		{key: "User.Contact.Email", want: "user.contact.email"},
		{key: "user.contact.email", want: "user.contact.email"},
		// Deprecated keys suggest their replacement, however far.
		{key: "user.biometric.fingerprint", want: "user.biometrics.fingerprint"},
		{key: "user.contact.organization", want: "user.contact"},
		// A typo of a deprecated key suggests a current one.
		{key: "user.biometric.fingerprnt", want: "user.biometrics.fingerprint"},
		{key: "user.contact.address.zip", want: ""}, // not .city: another word
		{key: "usr.name", want: "user.name"},
		{key: "nonsense", want: ""},
		{key: "user.favourite.colour", want: ""},
		{key: "", want: ""},
		{key: "marketing.advertisng", use: true, want: "marketing.advertising"},
		{key: "essential.servce", use: true, want: "essential.service"},
		{key: "personalize.profiling", use: true, want: "personalize.content.profiling"},
		{key: "world.domination", use: true, want: ""},
	} {
		name := tc.key
		if tc.use {
			name = "use/" + name
		}
		t.Run(name, func(t *testing.T) {
			got := SuggestCategory(tc.key)
			if tc.use {
				got = SuggestUse(tc.key)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTaxonomySuggestPrefix checks the parts of the same-prefix
// preference: the segments two keys share, and the length they take.
func TestTaxonomySuggestPrefix(t *testing.T) {
	if got, want := sharedSegments("user.contact.emial", "user.contact.email"), 2; got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, tc := range []struct {
		key  string
		n    int
		want int
	}{{"user.contact.email", 0, 0}, {"user.contact.email", 2, 13}, {"user", 1, 4}, {"user", 3, 4}} {
		if got := sharedLen(tc.key, tc.n); got != tc.want {
			t.Errorf("sharedLen(%s, %d): got %v, want %v", tc.key, tc.n, got, tc.want)
		}
	}
}

func TestTaxonomyLists(t *testing.T) {
	cats := Categories()
	if !slices.IsSorted(cats) {
		t.Errorf("got unsorted categories, want sorted")
	}
	if got, want := len(cats), 123; got != want {
		t.Errorf("got %v categories, want %v (the embedded list changed?)", got, want)
	}
	if got, want := len(Uses()), 56; got != want {
		t.Errorf("got %v uses, want %v", got, want)
	}
	for _, c := range cats {
		if !KnownCategory(c) {
			t.Errorf("got KnownCategory(%s) false, want true", c)
		}
		// Every parent of a key is a key too, as in fideslang.
		for p := parentKey(c); p != ""; p = parentKey(p) {
			if !KnownCategory(p) {
				t.Errorf("%s: got parent %s unknown, want known", c, p)
			}
		}
	}
	cats[0] = "changed"
	if Categories()[0] == "changed" {
		t.Errorf("got a shared slice, want a copy")
	}
	if r, ok := DeprecatedCategory("user.childrens"); !ok || r != "user.children" {
		t.Errorf("got %q %v, want user.children true", r, ok)
	}
	if _, ok := DeprecatedCategory("user.children"); ok {
		t.Errorf("got user.children deprecated, want current")
	}
	if r, ok := DeprecatedUse("personalize.profiling"); !ok || r != "personalize.content.profiling" {
		t.Errorf("got %q %v, want personalize.content.profiling true", r, ok)
	}
	if got, want := CategoryName("user.contact.email"), "User Contact Email"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := UseName("marketing.advertising"), "Advertising, Marketing or Promotion"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func parentKey(k string) string {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '.' {
			return k[:i]
		}
	}
	return ""
}
