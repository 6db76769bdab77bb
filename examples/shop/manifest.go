package shop

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

//go:embed lethe.yaml policies/*.txt
var manifest embed.FS

// WriteManifest writes the sample's data map (lethe.yaml and the policy
// texts it names) into dir, passing lethe.yaml through edit first (nil
// leaves it as it is).
func WriteManifest(dir string, edit func(string) string) error {
	return fs.WalkDir(manifest, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := manifest.ReadFile(path)
		if err != nil {
			return err
		}
		if path == "lethe.yaml" && edit != nil {
			b = []byte(edit(string(b)))
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
		return os.WriteFile(dst, b, 0o600)
	})
}

// SQLiteOnly turns the sample's lethe.yaml into one whose systems are the
// shop's database as the SQLite file shop.db beside it and the uploads
// directory: no Redis, mail provider or spreadsheet (nor the flows that
// name them). Tests and the demo run on it with nothing to install.
func SQLiteOnly(doc string) string {
	doc = strings.Replace(doc, "kind: postgres", "kind: sqlite", 1)
	doc = strings.Replace(doc, "connection: {env: SHOP_DATABASE_URL}", "connection: {path: shop.db}", 1)
	i, j := strings.Index(doc, "  # Sessions, carts"), strings.Index(doc, "  - name: uploads")
	doc = doc[:i] + doc[j:]
	return doc[:strings.Index(doc, "  # The mail provider")]
}
