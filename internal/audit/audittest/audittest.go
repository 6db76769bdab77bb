// Package audittest opens real audit logs for the tests of other packages.
package audittest

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
)

// Origin is the log name of the logs Open makes.
const Origin = "lethe.audit/test"

// Open opens an audit log in dir, its checkpoints signed by a fixed test
// key and anchored in anchor (a real key store), and closes it when the
// test ends.
func Open(t testing.TB, dir string, anchor lethe.CheckpointStore) *audit.Log {
	t.Helper()
	seed := sha256.Sum256([]byte("audittest signing seed"))
	signer, _, err := audit.NewSigner(Origin, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(context.Background(), dir, audit.Options{Origin: Origin, Signer: signer, Anchor: anchor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// Files returns every byte of every file under the log's directory, to
// search for values that must never be there.
func Files(t testing.TB, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}
