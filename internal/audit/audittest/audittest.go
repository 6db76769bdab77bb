// Package audittest opens real audit logs for the tests of other packages.
package audittest

import (
	"context"
	"crypto/sha256"
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
