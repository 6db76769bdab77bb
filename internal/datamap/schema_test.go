package datamap

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("got %v, want the schema to be JSON", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	sch, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("got %v, want the schema to compile", err)
	}
	return sch
}

// yamlInstance converts a YAML document to the JSON values the schema
// validates.
func yamlInstance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("got %v, want YAML", err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("got %v, want JSON-compatible YAML", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	return inst
}

func TestSchemaDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../../docs/datamap.schema.json")
	if err != nil {
		t.Fatalf("got %v, want docs/datamap.schema.json", err)
	}
	if !bytes.Equal(docs, schemaJSON) {
		t.Errorf("got docs/datamap.schema.json different, want it equal to internal/datamap/datamap.schema.json (run go generate ./internal/datamap)")
	}
	var s struct {
		ID     string `json:"$id"`
		Schema string `json:"$schema"`
	}
	if err := json.Unmarshal(schemaJSON, &s); err != nil {
		t.Fatal(err)
	}
	if s.ID != SchemaID || s.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("got %s %s, want %s and draft 2020-12", s.ID, s.Schema, SchemaID)
	}
}

// TestSchemaDescriptions checks that every property of every object the
// schema closes has a description, for editors to show.
func TestSchemaDescriptions(t *testing.T) {
	var doc any
	if err := json.Unmarshal(schemaJSON, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if v["additionalProperties"] == false {
				props, _ := v["properties"].(map[string]any)
				for k, p := range props {
					if d, _ := p.(map[string]any)["description"].(string); d == "" {
						t.Errorf("%s/properties/%s: got no description, want one", path, k)
					}
				}
			}
			for k, c := range v {
				walk(c, path+"/"+k)
			}
		case []any:
			for _, c := range v {
				walk(c, path)
			}
		}
	}
	walk(doc, "#")
}

// TestSchemaGood validates whole data maps: the fixture using every
// section and, once it exists, the shop example. The parser must accept
// them too, or the schema would lead editors astray.
func TestSchemaGood(t *testing.T) {
	sch := compileSchema(t)
	files := []string{"testdata/schema/good.yaml"}
	if _, err := os.Stat("../../examples/shop/lethe.yaml"); err == nil {
		files = append(files, "../../examples/shop/lethe.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(yamlInstance(t, data)); err != nil {
				t.Errorf("got %v, want the schema to accept it", err)
			}
			if _, err := Parse(f, data, filepath.Dir(f)); err != nil {
				t.Errorf("got %v, want the parser to accept it", err)
			}
		})
	}
}

// TestSchemaBad changes one thing in the good fixture and checks that the
// schema refuses it, as the parser does.
func TestSchemaBad(t *testing.T) {
	sch := compileSchema(t)
	good, err := os.ReadFile("testdata/schema/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new string
	}{
		{"unknown top-level key", "version: 1\n", "version: 1\ndatabase: x\n"},
		{"unknown table key", "        key: [id]\n", "        keys: [id]\n"},
		{"unknown column key", "{name: tier, category: user.loyalty.tier}", "{name: tier, categroy: user.loyalty.tier}"},
		{"version 2", "version: 1\n", "version: 2\n"},
		{"bad kind", "kind: postgres", "kind: postgresql"},
		{"bad table erase", "        erase: update\n", "        erase: anonymize\n"},
		{"delete as a column erase", "erase: pseudonymize}", "erase: delete}"},
		{"placeholder without value", "erase: placeholder, placeholder: erased}", "erase: placeholder}"},
		{"connection env and file", "connection: {env: SHOP_DATABASE_URL}", "connection: {env: SHOP_DATABASE_URL, file: /run/secrets/db}"},
		{"connection value inline", "connection: {env: SHOP_DATABASE_URL}", "connection: postgres://u:p@db/shop"},
		{"connection path for postgres", "connection: {env: SHOP_DATABASE_URL}", "connection: {path: shop.db}"},
		{"subject and via", "        subject: {column: id, identifier: shop_customer_id}\n", "        subject: {column: id, identifier: shop_customer_id}\n        via: {column: a, parent: b, references: c}\n"},
		{"neither subject nor via", "        subject: {column: id, identifier: shop_customer_id}\n", ""},
		{"incomplete retain rule", "          basis: legal_obligation\n          column: issued_at\n          period: 10y\n          reason: \"§147 AO: invoices are kept 10 years\"\n", "          basis: legal_obligation\n"},
		{"retain on consent", "basis: legal_obligation", "basis: consent"},
		{"bad period", "period: 10y", "period: 10 years"},
		{"tables on redis", "    kind: redis\n", "    kind: redis\n    tables: [{name: t, subject: {column: id}, erase: delete}]\n"},
		{"redis type", "type: hash", "type: hashmap"},
		{"member unquoted", "member: \"{email}\"", "member: {email}"},
		{"webhook without url", "      url: https://mailer.example/lethe\n", ""},
		{"webhook timeout", "timeout: 30s", "timeout: 30 seconds"},
		{"manual without checklist", "      checklist:\n        - Find the customer's folder in the archive.\n        - Shred everything but the invoices.\n", ""},
		{"bad legal basis", "legal_basis: contract", "legal_basis: contractual"},
		{"policy with file and hash", "      version: \"2024-05\"\n", "      version: \"2024-05\"\n      text_file: policy.txt\n"},
		{"bad system name", "name: shop_db", "name: Shop-DB"},
		{"unknown restrict key", "            objection: [newsletter]\n", "            objections: [newsletter]\n"},
		{"restrict without set", "          - set: {newsletter_ok: false}\n            objection", "          - objection"},
		{"restrict sets nothing", "set: {newsletter_ok: false}", "set: {}"},
		{"restrict value a list", "set: {newsletter_ok: false}", "set: {newsletter_ok: [false]}"},
		{"restrict column not SQL", "set: {newsletter_ok: false}", "set: {newsletter-ok: false}"},
		{"restrict objection empty", "objection: [newsletter]", "objection: []"},
		{"restrict objection not a list", "objection: [newsletter]", "objection: newsletter"},
		{"restrict as a mapping", "          - set: {newsletter_ok: false}\n            objection: [newsletter]\n", "          - set: {newsletter_ok: false}\n            objection: [newsletter]\n      - name: notes\n        subject: {column: id}\n        erase: delete\n        restrict: {set: {flag: true}}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(good, []byte(tc.old)) {
				t.Fatalf("the fixture has no %q", tc.old)
			}
			data := []byte(strings.Replace(string(good), tc.old, tc.new, 1))
			if err := sch.Validate(yamlInstance(t, data)); err == nil {
				t.Errorf("got the schema accepting it, want an error")
			}
			if _, err := Parse("bad.yaml", data, "testdata/schema"); err == nil {
				t.Errorf("got the parser accepting it, want an error (the schema and the parser disagree)")
			}
		})
	}
}
