package datamap

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func importShop(t *testing.T) []System {
	t.Helper()
	data, err := os.ReadFile("testdata/fides/shop.yml")
	if err != nil {
		t.Fatal(err)
	}
	systems, err := ImportFides("shop.yml", data)
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	return systems
}

func TestFidesImport(t *testing.T) {
	systems := importShop(t)
	want := []System{
		{
			Name:       "shop_db",
			Connection: SecretRef{Env: "SHOP_DB_URL"},
			Tables: []Table{
				{
					Name:    "customer",
					Subject: &Link{Column: "email", Identifier: "email"},
					Key:     []string{"id"},
					Erase:   "delete",
					Columns: []Column{
						{Name: "id", Category: "user.unique_id"},
						{Name: "email", Category: "user.contact.email"},
						{Name: "name", Category: "user.name"},
						{Name: "phone", Category: "user.contact.phone_number"},
						{Name: "profile", Category: "user.demographic.language"},
					},
				},
				{
					// customer.address_id refers to address.id with direction
					// "to": customer is visited first, and finds address.
					Name:  "address",
					Via:   &Via{Column: "id", Parent: "customer", References: "address_id"},
					Key:   []string{"id"},
					Erase: "delete",
					Columns: []Column{
						{Name: "street", Category: "user.contact.address.street"},
						{Name: "city", Category: "user.contact.address.city"},
						{Name: "postal_code", Category: "user.contact.address.postal_code"},
					},
				},
				{
					// orders.customer_id refers to customer.id "from".
					Name:    "orders",
					Via:     &Via{Column: "customer_id", Parent: "customer", References: "id"},
					Key:     []string{"id"},
					Erase:   "delete",
					Columns: []Column{{Name: "customer_id", Category: "user.unique_id"}},
				},
				{
					// No direction: taken towards the table with the identity.
					Name:  "payment_card",
					Via:   &Via{Column: "customer_id", Parent: "customer", References: "id"},
					Key:   []string{"id"},
					Erase: "delete",
					Columns: []Column{
						{Name: "customer_id", Category: "user.unique_id"},
						{Name: "ccn", Category: "user.financial.credit_card"},
					},
				},
				{
					Name:  "login",
					Via:   &Via{Column: "customer_id", Parent: "customer", References: "id"},
					Key:   []string{"id"},
					Erase: "delete",
					Columns: []Column{
						{Name: "customer_id", Category: "user.unique_id"},
						{Name: "ip", Category: "user.device.ip_address"},
					},
				},
				{
					Name:  "support_ticket",
					Key:   []string{"id"},
					Erase: "delete",
					Columns: []Column{
						{Name: "body", Category: "user.content.private"},
						{Name: "context", Category: "user.device.device_id"},
					},
				},
			},
		},
		{
			Name:        "events",
			Description: "Event store",
			Connection:  SecretRef{Env: "EVENTS_URL"},
			Tables: []Table{{
				Name:    "session",
				Subject: &Link{Column: "token", Identifier: "session_token"},
				Key:     []string{"token"},
				Erase:   "delete",
				Columns: []Column{
					{Name: "token", Category: "user.unique_id"},
					{Name: "customer_id", Category: "user.unique_id"},
				},
			}},
		},
	}
	if got, want := len(systems), len(want); got != want {
		t.Fatalf("got %v systems, want %v", got, want)
	}
	desc := systems[0].Description
	for _, note := range []string{
		"The web shop's PostgreSQL database.\n\nImported from Fides dataset shop-db; review:\n",
		"- collection order_item is left out",
		"- collection product is left out",
		"- customer.profile: nested fields are one column, of category user.demographic.language",
		"- customer: identity field phone is not used",
		"- login.customer_id: the reference to dataset events is left out",
		"- address: a table has one via; not taken: address.id → orders.shipping_address_id, address.id → payment_card.billing_address_id",
	} {
		if !strings.Contains(desc, note) {
			t.Errorf("got description %q, want it to contain %q", desc, note)
		}
	}
	systems[0].Description = ""
	for i := range want {
		if got := systems[i]; !reflect.DeepEqual(got, want[i]) {
			t.Errorf("system %d:\ngot  %+v\nwant %+v", i, got, want[i])
			for j := range min(len(got.Tables), len(want[i].Tables)) {
				if !reflect.DeepEqual(got.Tables[j], want[i].Tables[j]) {
					t.Errorf("table %d: got %+v, want %+v", j, got.Tables[j], want[i].Tables[j])
				}
			}
		}
	}
}

// TestFidesVias checks how references become vias: the shortest way to a
// subject, declared directions before guessed ones, chains through tables.
func TestFidesVias(t *testing.T) {
	data := `dataset:
  - fides_key: app
    collections:
      - name: item          # two hops from the subject, through cart
        fields:
          - {name: cart_id, data_categories: [user.behavior.purchase_history], fides_meta: {references: [{dataset: app, field: cart.id, direction: from}]}}
      - name: cart
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: owner, data_categories: [user.unique_id], fides_meta: {references: [{dataset: app, field: account.id}]}}
      - name: account
        fields:
          - {name: id, data_categories: [user.unique_id], fides_meta: {primary_key: true}}
          - {name: mail, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - {name: avatar_id, fides_meta: {references: [{dataset: app, field: avatar.id}]}}
      - name: avatar        # undirected, from account's side: avatar is the child
        fields:
          - {name: id, data_categories: [user.content.self_image]}
      - name: orphan        # refers to a table that reaches no subject
        fields:
          - {name: x, data_categories: [user.name], fides_meta: {references: [{dataset: app, field: island.id, direction: from}]}}
      - name: island
        fields:
          - {name: id, data_categories: [user.name]}
`
	systems, err := ImportFides("app.yml", []byte(data))
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	vias := map[string]*Via{}
	for _, tb := range systems[0].Tables {
		vias[tb.Name] = tb.Via
	}
	for _, tc := range []struct {
		table string
		want  *Via
	}{
		{"item", &Via{Column: "cart_id", Parent: "cart", References: "id"}},
		{"cart", &Via{Column: "owner", Parent: "account", References: "id"}},
		{"account", nil},
		{"avatar", &Via{Column: "id", Parent: "account", References: "avatar_id"}},
		{"orphan", &Via{Column: "x", Parent: "island", References: "id"}},
		{"island", nil},
	} {
		t.Run(tc.table, func(t *testing.T) {
			if got := vias[tc.table]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if got, want := systems[0].Description, "orphan: its via reaches no table with an identity"; !strings.Contains(got, want) {
		t.Errorf("got %q, want it to contain %q", got, want)
	}
}

func TestFidesImportErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       string
	}{
		{"not yaml", "dataset: [\n", "f.yml:1: did not find expected node content"},
		{"empty", "", "f.yml: the file is empty"},
		{"no datasets", "system:\n  - fides_key: x\n", "f.yml:1:1: no dataset list"},
		{"datasets not a list", "dataset: secret\n", "f.yml:1:10: dataset must be a list"},
		{"no fides_key", "dataset:\n  - name: x\n", "f.yml:2:5: dataset 1 has no fides_key"},
		{"no collection name", "dataset:\n  - fides_key: d\n    collections:\n      - fields: []\n", "f.yml:4:9: dataset \"d\": collection 1 has no name"},
		{"categories not a list", "dataset:\n  - fides_key: d\n    collections:\n      - name: c\n        fields:\n          - name: f\n            data_categories: secret\n",
			"f.yml:7:30: dataset \"d\": collection \"c\": field \"f\": data_categories must be a list"},
		{"bad primary_key", "dataset:\n  - fides_key: d\n    collections:\n      - name: c\n        fields:\n          - name: f\n            fides_meta: {primary_key: secret}\n",
			"f.yml:7:39: dataset \"d\": collection \"c\": field \"f\": fides_meta.primary_key must be true or false"},
		{"bad direction", "dataset:\n  - fides_key: d\n    collections:\n      - name: c\n        fields:\n          - name: f\n            fides_meta: {references: [{dataset: d, field: c.g, direction: secret}]}\n",
			"direction must be from or to"},
		{"field without collection", "dataset:\n  - fides_key: d\n    collections:\n      - name: c\n        fields:\n          - name: f\n            fides_meta: {references: [{dataset: d, field: secret}]}\n",
			"field must be collection.field"},
		{"unknown collection", "dataset:\n  - fides_key: d\n    collections:\n      - name: c\n        fields:\n          - name: f\n            data_categories: [user.name]\n            fides_meta: {references: [{dataset: d, field: nowhere.id}]}\n",
			"f.yml:8:39: dataset \"d\": collection \"c\": field \"f\" references collection \"nowhere\", which the dataset does not declare"},
		{"duplicate collection", "dataset:\n  - fides_key: d\n    collections:\n      - name: c\n      - name: c\n", "f.yml:5:9: dataset \"d\": collection \"c\" is declared twice"},
		{"duplicate system", "dataset:\n  - fides_key: a-b\n  - fides_key: a_b\n", "f.yml:3:5: dataset \"a_b\" gives system name a_b, as dataset \"a-b\" does"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportFides("f.yml", []byte(tc.data))
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("got %v, want no value of the file in the error", err)
			}
		})
	}
}

func TestFidesNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres_example_test_dataset", "postgres_example_test_dataset"},
		{"Shop-DB.main", "shop_db_main"},
		{"1st", "fides_1st"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
	} {
		if got := fidesSystemName(tc.in); got != tc.want {
			t.Errorf("fidesSystemName(%s): got %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"email", "email"}, {"phone_number", "phone"}, {"loyalty_id", "loyalty_id"}, {"Customer-ID", "customer_id"},
	} {
		if got := fidesIdentifierKind(tc.in); got != tc.want {
			t.Errorf("fidesIdentifierKind(%s): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFidesMarshalRoundTrip checks that MarshalSystems writes what the
// manifest reads back as the same systems.
func TestFidesMarshalRoundTrip(t *testing.T) {
	systems := importShop(t)
	out, err := MarshalSystems(systems)
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	text := string(out)
	for _, want := range []string{
		"systems:\n  - name: shop_db\n    kind: \"\" # set it: postgres, mysql, sqlite, redis, files, webhook, manual\n",
		"    connection:\n      env: SHOP_DB_URL\n",
		"        key: [id]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("got\n%s\nwant it to contain %q", text, want)
		}
	}
	for _, absent := range []string{"no_export:", "placeholder:", "retain:", "purposes:", "webhook:"} {
		if strings.Contains(text, absent) {
			t.Errorf("got\n%s\nwant no %s (empty values are left out)", text, absent)
		}
	}
	var back struct {
		Systems []System `yaml:"systems"`
	}
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("got %v, want the YAML to read back", err)
	}
	zeroPos(reflect.ValueOf(&back.Systems).Elem())
	if !reflect.DeepEqual(back.Systems, systems) {
		t.Errorf("got %+v, want %+v", back.Systems, systems)
	}
}

// TestFidesMarshalAll round-trips a system using every field MarshalSystems
// writes, not only those the import fills.
func TestFidesMarshalAll(t *testing.T) {
	systems := []System{
		{Name: "db", Kind: KindPostgres, Description: "Main", Connection: SecretRef{File: "/run/secrets/db"}, Purposes: []string{"orders"},
			Tables: []Table{{Name: "invoices", Subject: &Link{Column: "customer_id", Identifier: "shop_customer_id"}, Key: []string{"id", "year"},
				Erase: "retain", Retain: &Retention{Basis: "legal_obligation", Column: "issued_at", Period: Period{Years: 10, Months: 6}, Reason: "HGB §257"},
				NoExport: true, Columns: []Column{{Name: "name", Category: "user.name", Erase: "placeholder", Placeholder: "erased"}}}}},
		{Name: "cache", Kind: KindRedis, Connection: SecretRef{Env: "REDIS_URL"},
			Keys: []KeySpace{{Pattern: "newsletter", Type: "set", Member: "{email}", Categories: []string{"user.contact.email"}, TTLOnly: true}}},
		{Name: "uploads", Kind: KindFiles, Connection: SecretRef{Path: "/srv/uploads"},
			Files: []FileSet{{Pattern: "avatars/{subject}/*", Derived: []string{"thumbs/{subject}/*"}, Categories: []string{"user.content.self_image"}}}},
		{Name: "crm", Kind: KindWebhook, Recipient: "crm_vendor", Connection: SecretRef{Env: "CRM_SECRET"},
			Webhook: &Webhook{URL: "https://crm.example/erase", Callback: true, Timeout: Duration(15e9), Categories: []string{"user.name"}}},
		{Name: "paper", Kind: KindManual, Manual: &Manual{Assignee: "office", Checklist: []string{"shred the file"}, Categories: []string{"user.name"}}},
	}
	out, err := MarshalSystems(systems)
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	var back struct {
		Systems []System `yaml:"systems"`
	}
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("got %v, want the YAML to read back:\n%s", err, out)
	}
	zeroPos(reflect.ValueOf(&back.Systems).Elem())
	if !reflect.DeepEqual(back.Systems, systems) {
		t.Errorf("got %+v, want %+v\n%s", back.Systems, systems, out)
	}
	if strings.Contains(string(out), "# set it") {
		t.Errorf("got a kind comment on systems with kinds, want none:\n%s", out)
	}
}

// zeroPos clears every Pos in v, which the manifest's decoding fills.
func zeroPos(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			zeroPos(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			zeroPos(v.Index(i))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[Pos]() {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				zeroPos(v.Field(i))
			}
		}
	}
}

// TestFidesImportValidates checks the import against the validator: once
// the user sets the kinds, the only problem left is the table Fides gave
// no way to a subject.
func TestFidesImportValidates(t *testing.T) {
	systems := importShop(t)
	for i := range systems {
		systems[i].Kind = KindPostgres
	}
	m := &Manifest{Version: 1, Organisation: Organisation{Name: "Shop", Contact: "privacy@shop.example"}, Systems: systems}
	ps, ok := AsProblems(m.Validate())
	if !ok || len(ps) != 1 {
		t.Fatalf("got %v, want one problem", m.Validate())
	}
	if got, want := ps[0].Msg, "table shop_db.support_ticket has no path to a subject"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
