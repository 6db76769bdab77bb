package lethe

import "testing"

func TestTenantKEKID(t *testing.T) {
	for _, tc := range []struct {
		tenant  string
		version int
		want    string
	}{
		{"acme", 1, "tenant:acme:v1"},
		{"acme-eu_2", 12, "tenant:acme-eu_2:v12"},
	} {
		if got := TenantKEKID(tc.tenant, tc.version); got != tc.want {
			t.Errorf("TenantKEKID(%q, %d): got %q, want %q", tc.tenant, tc.version, got, tc.want)
		}
		tenant, version, ok := ParseTenantKEKID(tc.want)
		if !ok || tenant != tc.tenant || version != tc.version {
			t.Errorf("ParseTenantKEKID(%q): got %q, %d, %v, want %q, %d, true", tc.want, tenant, version, ok, tc.tenant, tc.version)
		}
	}
	if got := TenantKEKIDs("acme", 1); len(got) != 2 || got[0] != "tenant:acme:v1" || got[1] != "tenant:acme" {
		t.Errorf("TenantKEKIDs(acme, 1): got %q, want both forms of version 1", got)
	}
	if got := TenantKEKIDs("acme", 2); len(got) != 1 || got[0] != "tenant:acme:v2" {
		t.Errorf("TenantKEKIDs(acme, 2): got %q, want [tenant:acme:v2]", got)
	}
}

func TestParseTenantKEKID(t *testing.T) {
	for _, tc := range []struct {
		kekID   string
		tenant  string
		version int
		ok      bool
	}{
		{"tenant:acme", "acme", 1, true}, // the form from before versions
		{"tenant:acme:v1", "acme", 1, true},
		{"tenant:acme:v2147483647", "acme", 2147483647, true},
		{"tenant:acme:v2147483648", "", 0, false},
		{"tenant:acme:v0", "", 0, false},
		{"tenant:acme:v01", "", 0, false},
		{"tenant:acme:v", "", 0, false},
		{"tenant:acme:2", "", 0, false},
		{"tenant:acme:v-1", "", 0, false},
		{"tenant:acme:v+1", "", 0, false},
		{"tenant:acme:v1:v2", "", 0, false},
		{"tenant:Acme", "", 0, false},
		{"tenant:", "", 0, false},
		{"tenant::v1", "", 0, false},
		{"local-0123456789abcdef", "", 0, false},
		{"", "", 0, false},
	} {
		tenant, version, ok := ParseTenantKEKID(tc.kekID)
		if tenant != tc.tenant || version != tc.version || ok != tc.ok {
			t.Errorf("ParseTenantKEKID(%q): got %q, %d, %v, want %q, %d, %v", tc.kekID, tenant, version, ok, tc.tenant, tc.version, tc.ok)
		}
	}
}

func FuzzParseTenantKEKID(f *testing.F) {
	for _, s := range []string{"tenant:acme", "tenant:acme:v1", "tenant:acme:v99", "tenant:a:v0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tenant, version, ok := ParseTenantKEKID(s)
		if !ok {
			return
		}
		// Every key ID it accepts is one of the forms it names.
		forms := TenantKEKIDs(tenant, version)
		for _, f := range forms {
			if f == s {
				return
			}
		}
		t.Errorf("ParseTenantKEKID(%q) = %q, %d: not one of %q", s, tenant, version, forms)
	})
}
