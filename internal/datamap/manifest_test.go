package datamap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base is a small valid manifest; the cases below break it one way each.
const base = `version: 1
organisation:
  name: Shop Ltd
  contact: privacy@shop.example
dpo:
  name: Dana
  email: dpo@shop.example
purposes:
  - key: orders
    description: Taking and delivering orders
    legal_basis: contract
    policy: {version: "1", text_sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
recipients:
  - key: mailer
    name: Mailer Inc
    country: US
    safeguards: standard contractual clauses
systems:
  - name: shop
    kind: postgres
    connection: {env: SHOP_DATABASE_URL}
    purposes: [orders]
    tables:
      - name: customers
        subject: {column: lethe_id}
        erase: delete
        columns:
          - {name: email, category: user.contact.email, erase: pseudonymize}
      - name: orders
        via: {column: customer_id, parent: customers, references: id}
        erase: update
        columns:
          - {name: shipping_name, category: user.name, erase: pseudonymize}
      - name: invoices
        via: {column: customer_id, parent: customers, references: id}
        erase: retain
        retain: {basis: legal_obligation, column: issued_at, period: 10y, reason: commercial code}
        columns:
          - {name: billing_name, category: user.name, erase: pseudonymize}
  - name: sessions
    kind: redis
    connection: {env: SHOP_REDIS_URL}
    keys:
      - {pattern: "session:{shop_customer_id}", type: hash, ttl_only: true, categories: [user.device]}
  - name: uploads
    kind: files
    connection: {path: ./uploads}
    files:
      - {pattern: "avatars/{shop_customer_id}/*", derived: ["thumbs/{shop_customer_id}/*"], categories: [user.content]}
  - name: mailer
    kind: webhook
    connection: {env: MAILER_SECRET}
    recipient: mailer
    webhook: {url: "https://mailer.example/lethe", callback: true, categories: [user.contact.email]}
  - name: crm
    kind: manual
    manual: {assignee: ops@shop.example, checklist: [Delete the contact]}
flows:
  - {from: shop, to: mailer, categories: [user.contact.email], purpose: orders}
`

// customersEmail is the last line of the customers table in base, where
// cases add a restrict action.
const customersEmail = "          - {name: email, category: user.contact.email, erase: pseudonymize}\n"

func TestParseGood(t *testing.T) {
	m, err := Parse("lethe.yaml", []byte(base), "/srv/shop")
	if err != nil {
		t.Fatal(err)
	}
	shop, ok := m.System("shop")
	if !ok || len(shop.Tables) != 3 {
		t.Fatalf("got %+v, want system shop with 3 tables", m.Systems)
	}
	inv, _ := shop.Table("invoices")
	if inv.Retain.Period != (Period{Years: 10}) || inv.Via.Parent != "customers" {
		t.Errorf("invoices: got %+v / %+v", inv.Retain, inv.Via)
	}
	if inv.Pos.File != "lethe.yaml" || inv.Pos.Line != 34 || inv.Pos.Column != 9 {
		t.Errorf("invoices declared at %s, want lethe.yaml:34:9", inv.Pos)
	}
	up, _ := m.System("uploads")
	if up.Connection.Path != filepath.Join("/srv/shop", "uploads") {
		t.Errorf("uploads path: got %s, want it made absolute", up.Connection.Path)
	}
}

// TestRestrict reads a table's restrict entries: values by their YAML
// type, positions, and which entries a restriction and an objection to a
// purpose each apply.
func TestRestrict(t *testing.T) {
	doc := strings.Replace(base, customersEmail, customersEmail+`        restrict:
          - set: {processing_restricted: true, level: 2, ratio: 0.5, note: "1", cleared_at: null, since: 2025-01-01}
          - set: {marketing_ok: false}
            objection: [orders]
`, 1)
	m, err := Parse("lethe.yaml", []byte(doc), "/srv/shop")
	if err != nil {
		t.Fatal(err)
	}
	shop, _ := m.System("shop")
	cust, _ := shop.Table("customers")
	if len(cust.Restrict) != 2 {
		t.Fatalf("got %d restrict entries, want 2", len(cust.Restrict))
	}
	got := map[string]any{}
	for _, a := range cust.Restrict[0].Set {
		got[a.Column] = a.Value
	}
	want := map[string]any{"processing_restricted": true, "level": int64(2), "ratio": 0.5, "note": "1", "cleared_at": nil, "since": "2025-01-01"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("set %s: got %#v, want %#v", k, g, w)
		}
	}
	if a := cust.Restrict[0].Set[0]; a.Pos.String() != "lethe.yaml:30:19" || a.Column != "processing_restricted" || a.Kind() != "true or false" {
		t.Errorf("got %s at %s (%s), want processing_restricted at lethe.yaml:30:19", a.Column, a.Pos, a.Kind())
	}
	for objection, want := range map[string]string{"": "processing_restricted", "orders": "marketing_ok", "newsletter": ""} {
		var cols []string
		for _, r := range cust.Restrictions(objection) {
			for _, a := range r.Set {
				cols = append(cols, a.Column)
			}
		}
		if len(cols) > 0 && cols[0] != want || len(cols) == 0 && want != "" {
			t.Errorf("objection %q: got %v, want %s first", objection, cols, want)
		}
	}

	// An objection to a purpose declared but not among the system's.
	doc2 := strings.Replace(strings.Replace(doc, "objection: [orders]", "objection: [marketing]", 1), "recipients:", `  - key: marketing
    description: Offers
    legal_basis: legitimate_interests
    policy: {version: "1", text_sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
recipients:`, 1)
	_, err = Parse("lethe.yaml", []byte(doc2), "/srv/shop")
	if err == nil || !strings.Contains(err.Error(), "restrict objection names purpose marketing, which system shop does not list") {
		t.Errorf("got %v, want the purpose named as not the system's", err)
	}
}

// TestBadManifests: each mistake gets one clear error, with its place and
// a hint.
func TestBadManifests(t *testing.T) {
	cases := []struct {
		name, old, new string
		want           []string // substrings of the one error
	}{
		{"unknown kind", "kind: postgres", "kind: postgress", []string{"lethe.yaml:19:5:", `unknown kind "postgress"`, "did you mean postgres?"}},
		{"no path to a subject", "        via: {column: customer_id, parent: customers, references: id}\n        erase: update", "        erase: update", []string{"lethe.yaml:29:9:", "table shop.orders has no path to a subject", "via:"}},
		{"cycle", "      - name: customers\n        subject: {column: lethe_id}", "      - name: customers\n        via: {column: id, parent: orders, references: customer_id}", []string{"via forms a cycle", "customers → orders → customers"}},
		{"missing connection", "    connection: {env: SHOP_REDIS_URL}\n", "", []string{"lethe.yaml:40:5:", "system sessions: no connection reference", "{env: VARIABLE}"}},
		{"inline secret", "connection: {env: SHOP_DATABASE_URL}", "connection: postgres://shop:hunter2@db/shop", []string{"lethe.yaml:21:17:", "connection must reference the value, not hold it"}},
		{"category typo", "category: user.contact.email, erase: pseudonymize}", "category: user.contact.emial, erase: pseudonymize}", []string{"lethe.yaml:28:13:", `unknown data category "user.contact.emial"`, "did you mean user.contact.email?"}},
		{"unknown key", "        erase: update", "        erase: update\n        colums: []", []string{"lethe.yaml:32:9:", `unknown key "colums" in a table`, "did you mean columns?"}},
		{"column delete", "{name: shipping_name, category: user.name, erase: pseudonymize}", "{name: shipping_name, category: user.name, erase: delete}", []string{`erase "delete" is not a column action`, "delete is a table's action"}},
		{"kept column without action", "{name: billing_name, category: user.name, erase: pseudonymize}", "{name: billing_name, category: user.name}", []string{"column billing_name holds user.name but says no erase action"}},
		{"retain without rule", "        retain: {basis: legal_obligation, column: issued_at, period: 10y, reason: commercial code}\n", "", []string{"erase: retain needs a retain rule"}},
		{"retain on consent", "basis: legal_obligation", "basis: consent", []string{`retain.basis "consent" is not a basis that survives erasure`}},
		{"bad period", "period: 10y", "period: ten years", []string{"lethe.yaml:37:70:"}},
		{"unknown purpose", "purposes: [orders]", "purposes: [order]", []string{`purpose "order" is not declared`, "did you mean orders?"}},
		{"unknown parent", "parent: customers, references: id}\n        erase: update", "parent: customer, references: id}\n        erase: update", []string{`via.parent "customer" is not a table of system shop`, "did you mean customers?"}},
		{"plain http webhook", "https://mailer.example/lethe", "http://mailer.example/lethe", []string{"webhook.url must be https://"}},
		{"redis without placeholder", `pattern: "session:{shop_customer_id}"`, `pattern: "session:all"`, []string{"needs exactly one placeholder"}},
		{"files escaping root", `"avatars/{shop_customer_id}/*"`, `"../avatars/{shop_customer_id}/*"`, []string{"must stay under the root"}},
		{"flow to nowhere", "{from: shop, to: mailer,", "{from: shop, to: mailr,", []string{`flow names "mailr"`, "did you mean mailer?"}},
		{"path for a secret", "connection: {env: SHOP_DATABASE_URL}", "connection: {path: /etc/shop.url}", []string{"path is only for an SQLite file or a files root"}},
		{"two links", "        subject: {column: lethe_id}\n", "        subject: {column: lethe_id}\n        via: {column: id, parent: orders, references: customer_id}\n", []string{"gives both subject and via"}},
		{"bad yaml", "version: 1\n", "version: 1\n  oops: [\n", []string{"lethe.yaml:"}},
		{"duplicate system", "  - name: crm\n", "  - name: shop\n", []string{"system shop is declared twice"}},
		{"restrict objection to an undeclared purpose", customersEmail, customersEmail + "        restrict:\n          - {set: {marketing_ok: false}, objection: [order]}\n", []string{"lethe.yaml:30:13:", `purpose "order" is not declared`, "did you mean orders?"}},
		{"restrict unknown key", customersEmail, customersEmail + "        restrict:\n          - {sett: {processing_restricted: true}}\n", []string{"lethe.yaml:30:14:", `unknown key "sett" in a restrict entry`, "did you mean set?"}},
		{"restrict value not plain", customersEmail, customersEmail + "        restrict:\n          - set: {processing_restricted: [hunter2]}\n", []string{"lethe.yaml:30:42:", "the value of processing_restricted must be a string, a number, true, false or null"}},
		{"restrict column twice", customersEmail, customersEmail + "        restrict:\n          - set: {processing_restricted: true, processing_restricted: false}\n", []string{"lethe.yaml:30:48:", `column "processing_restricted" appears twice in set`}},
		{"restrict sets nothing", customersEmail, customersEmail + "        restrict:\n          - set: {}\n", []string{"lethe.yaml:30:13:", "a restrict entry sets no column"}},
		{"restrict sets the subject link", customersEmail, customersEmail + "        restrict:\n          - set: {lethe_id: hunter2}\n", []string{"lethe.yaml:30:19:", "restrict sets lethe_id, which is subject.column"}},
		{"restrict sets a column twice for one request", customersEmail, customersEmail + "        restrict:\n          - set: {processing_restricted: true}\n          - set: {processing_restricted: false}\n", []string{"lethe.yaml:31:19:", "restrict sets processing_restricted twice for a restriction (first at lethe.yaml:30:19)"}},
		{"restrict objection empty", customersEmail, customersEmail + "        restrict:\n          - {set: {marketing_ok: false}, objection: []}\n", []string{"restrict objection lists no purpose"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.old) {
				t.Fatalf("the case's text is not in the base manifest")
			}
			doc := strings.Replace(base, c.old, c.new, 1)
			_, err := Parse("lethe.yaml", []byte(doc), "/srv/shop")
			if err == nil {
				t.Fatal("got no error")
			}
			msg := err.Error()
			if ps, ok := AsProblems(err); ok && len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(ps), msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got %q, want it to contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("the error repeats an inline secret: %q", msg)
			}
		})
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	i := strings.Index(base, "systems:")
	j := strings.Index(base, "flows:")
	files := map[string]string{
		"00-org.yaml":     base[:i],
		"10-systems.yaml": base[i:j],
		"20-flows.yml":    base[j:],
		"README.md":       "not read",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 3 || len(m.Systems) != 5 || len(m.Flows) != 1 || m.Organisation.Name != "Shop Ltd" {
		t.Errorf("got %d files, %d systems, %d flows, organisation %q", len(m.Files), len(m.Systems), len(m.Flows), m.Organisation.Name)
	}
	// A problem in the second file names it.
	os.WriteFile(filepath.Join(dir, "10-systems.yaml"), []byte(strings.Replace(base[i:j], "kind: redis", "kind: rediss", 1)), 0o600)
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "10-systems.yaml:") {
		t.Errorf("got %v, want an error in 10-systems.yaml", err)
	}
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]Period{"10y": {Years: 10}, "6mo": {Months: 6}, "2w": {Days: 14}, "90d": {Days: 90}, "1y6mo": {Years: 1, Months: 6}} {
		got, err := ParsePeriod(in)
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10", "y", "10x", "0d", "1000y", "-1d"} {
		if _, err := ParsePeriod(bad); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}

func TestSecretRef(t *testing.T) {
	t.Setenv("LETHE_TEST_DSN", "postgres://u:hunter2@db/x")
	if v, err := (SecretRef{Env: "LETHE_TEST_DSN"}).Resolve(); err != nil || v != "postgres://u:hunter2@db/x" {
		t.Errorf("env: got %v", err)
	}
	_, err := SecretRef{Env: "LETHE_TEST_UNSET_VARIABLE"}.Resolve()
	if err == nil || !strings.Contains(err.Error(), "LETHE_TEST_UNSET_VARIABLE is not set") {
		t.Errorf("unset env: got %v", err)
	}
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("hunter2\n"), 0o600)
	if v, err := (SecretRef{File: f}).Resolve(); err != nil || v != "hunter2" {
		t.Errorf("file: got %v", err)
	}
	_, err = SecretRef{File: f + ".missing"}.Resolve()
	if err == nil || errors.Is(err, os.ErrNotExist) == false && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: got %v", err)
	}
	if s := (SecretRef{Env: "X"}).String(); s != "env X" {
		t.Errorf("got %q", s)
	}
}

// FuzzParse: no input makes the parser panic, and an accepted manifest
// validates again without problems.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("version: 1\nsystems: [{name: a, kind: sqlite, connection: {path: a.db}, tables: [{name: t, via: {column: a, parent: t, references: b}, erase: delete}]}]"))
	f.Add([]byte("systems:\n  - &a {name: x}\n  - *a\n"))
	f.Add([]byte(strings.Replace(base, customersEmail, customersEmail+"        restrict:\n          - {set: {processing_restricted: true, n: &v 1, m: *v}}\n          - {set: {marketing_ok: false}, objection: [orders]}\n", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data, "/tmp")
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted, then invalid: %v", err)
		}
	})
}
