package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

const exampleManifest = "../../examples/shop/lethe.yaml"

func TestDatamapValidate(t *testing.T) {
	m, out, errOut := testMain(nil)
	if code := m.Run(context.Background(), []string{"datamap", "validate", "--manifest", exampleManifest}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out.String(), "valid: 5 purposes, 5 systems") {
		t.Errorf("got %q", out)
	}
	bad := filepath.Join(exampleCopy(t, func(doc string) string {
		return strings.Replace(strings.Replace(doc, "kind: postgres", "kind: postgress", 1), "data_categories: [user.contact.email, user.name]", "data_categories: [user.contact.emial, user.name]", 1)
	}), "lethe.yaml")
	m, out, errOut = testMain(map[string]string{"LETHE_DATAMAP": bad})
	if code := m.Run(context.Background(), []string{"datamap", "validate"}); code != 1 || out.String() != "" {
		t.Fatalf("a broken map: exit %d, want 1; %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], bad+":") || !strings.Contains(errOut.String(), "did you mean postgres?") || !strings.Contains(errOut.String(), "did you mean user.contact.email?") || lines[2] != "2 problems in the data map" {
		t.Errorf("got %q", errOut)
	}
}

// exampleCopy writes the example map, changed by edit, with its policy
// texts into a temporary directory and returns the directory.
func exampleCopy(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	if err := shop.WriteManifest(dir, edit); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shopDir writes the example map with the shop on SQLite into a temporary
// directory, with a seeded database and uploads, and sets the variables
// the other systems' connections name.
func shopDir(t *testing.T) (dir string, db *sql.DB, cs []shop.Customer) {
	t.Helper()
	ctx := context.Background()
	dir = exampleCopy(t, func(doc string) string {
		doc = strings.Replace(doc, "kind: postgres", "kind: sqlite", 1)
		return strings.Replace(doc, "connection: {env: SHOP_DATABASE_URL}", "connection: {path: shop.db}", 1)
	})
	var err error
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "shop.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := shop.Create(ctx, db, shop.SQLite); err != nil {
		t.Fatal(err)
	}
	if cs, err = shop.Seed(ctx, db, shop.SQLite, 5, 1); err != nil {
		t.Fatal(err)
	}
	if err := shop.SeedFiles(filepath.Join(dir, "uploads"), cs); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHOP_REDIS_URL", testsvc.Redis(t))
	t.Setenv("MAILER_WEBHOOK_SECRET", "a-secret-shared-with-the-mailer")
	return dir, db, cs
}

func TestDatamapCheck(t *testing.T) {
	dir, db, _ := shopDir(t)
	manifest := filepath.Join(dir, "lethe.yaml")
	m, out, errOut := testMain(nil)
	if code := m.Run(context.Background(), []string{"datamap", "check", "--manifest", manifest}); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out.String(), "shop (sqlite): matches the map") {
		t.Errorf("got %q", out)
	}
	if _, err := db.Exec("ALTER TABLE customers ADD COLUMN mobile_phone TEXT"); err != nil {
		t.Fatal(err)
	}
	m, out, _ = testMain(nil)
	if code := m.Run(context.Background(), []string{"datamap", "check", "--manifest", manifest, "--json"}); code != 1 {
		t.Fatalf("drift: exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), `"problem": "unmapped"`) || !strings.Contains(out.String(), `"column": "mobile_phone"`) {
		t.Errorf("got %s", out)
	}
}

// TestPlanErase: the dry run reads the subject's identifiers from the
// server, plans every system, and changes nothing.
func TestPlanErase(t *testing.T) {
	dir, db, cs := shopDir(t)
	in := serve(t, filepath.Join(t.TempDir(), "data"), nil)
	c := cs[2]
	ctx := context.Background()
	admin := in.client(t, in.adminKey(t))
	app, err := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	dpo, err := admin.CreateKey(ctx, client.KeySpec{Name: "dpo", Role: "dpo"})
	if err != nil {
		t.Fatal(err)
	}
	dpoKey := filepath.Join(t.TempDir(), "dpo.key")
	os.WriteFile(dpoKey, []byte(dpo.Secret), 0o600)
	s, err := in.client(t, app.Secret).CreateSubject(ctx, map[string]string{"email": c.Email, "shop_customer_id": strconv.FormatInt(c.ID, 10)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The shop keeps the Lethe subject ID of each customer.
	if _, err := db.Exec("UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		db.QueryRow("SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM activity_log) + (SELECT count(*) FROM addresses)").Scan(&n)
		return n
	}
	before := count()
	code, out, errOut := in.run(t, "plan", "erase", "--subject", s.ID, "--manifest", filepath.Join(dir, "lethe.yaml"), "--key-file", dpoKey)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"nothing was changed", "retain invoices", "legal_obligation", "delete activity_log", "update customers", "delete avatars/{shop_customer_id}/*", "notify https://mailer.example/lethe", "task", "rows: " + strconv.FormatInt(c.ID, 10)} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, c.Email) || strings.Contains(out, c.FullName) {
		t.Error("the plan shows a personal value")
	}
	if count() != before {
		t.Error("the dry run changed the database")
	}
}

// TestDatamapImportFides: a Fides dataset becomes systems to paste into
// lethe.yaml, which validate once their kinds are set.
func TestDatamapImportFides(t *testing.T) {
	m, out, errOut := testMain(nil)
	if code := m.Run(context.Background(), []string{"datamap", "import-fides", "../../internal/datamap/testdata/fides/shop.yml"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	text := out.String()
	for _, want := range []string{"systems:", "subject:", "via:", "category: user.contact.email"} {
		if !strings.Contains(text, want) {
			t.Errorf("the import lacks %q:\n%s", want, text)
		}
	}
	m, _, _ = testMain(nil)
	if code := m.Run(context.Background(), []string{"datamap", "import-fides"}); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
}
