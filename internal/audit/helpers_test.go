package audit

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "lethe.test/audit"

// testEnv is a log directory with its signing key and a real key store as
// the anchor.
type testEnv struct {
	dir      string
	anchor   *sqlite.KeyStore
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	return envAt(t, t.TempDir(), "test signing seed")
}

// envAt is newEnv over a given directory, root: the key store is
// root/keys.db and the log root/audit, so that another process (or a later
// round) opening the same root sees the same log, anchor and key. The
// signing key is made from seed; a different seed makes a different key
// under the same origin.
func envAt(t testing.TB, root, seed string) *testEnv {
	t.Helper()
	db, err := sqlite.OpenKeys(context.Background(), filepath.Join(root, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sha256.Sum256([]byte(seed))
	signer, vkey, err := NewSigner(testOrigin, s[:])
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{dir: filepath.Join(root, "audit"), anchor: sqlite.NewKeyStore(db), signer: signer, verifier: v, vkey: vkey}
}

func (e *testEnv) options() Options {
	return Options{Origin: testOrigin, Signer: e.signer, Anchor: e.anchor, Interval: time.Hour}
}

func (e *testEnv) open(t testing.TB) *Log {
	t.Helper()
	l, err := Open(context.Background(), e.dir, e.options())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (e *testEnv) verify(t testing.TB) *Report {
	t.Helper()
	r, err := Verify(e.dir, VerifyOptions{Origin: testOrigin, Verifier: e.verifier})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// event returns the i-th test event.
func event(i int) lethe.AuditEvent {
	return lethe.AuditEvent{
		Time:   time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Action: "subject.read", Outcome: "ok", KeyID: "key_test", Role: lethe.RoleService,
		Tenant: "acme", SubjectID: fmt.Sprintf("sub_%d", i%10), Purpose: "billing", Fields: []string{"email"},
	}
}

func entry(i int) []byte {
	ev := event(i)
	b, _ := json.Marshal(&ev)
	return b
}

// appendN appends entries from..to-1 in batches of batch.
func appendN(t testing.TB, l *Log, from, to, batch int) {
	t.Helper()
	for i := from; i < to; i += batch {
		var es [][]byte
		for j := i; j < min(to, i+batch); j++ {
			es = append(es, entry(j))
		}
		first, err := l.Append(context.Background(), es...)
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(i) {
			t.Fatalf("append at %d: got first index %d", i, first)
		}
	}
}
