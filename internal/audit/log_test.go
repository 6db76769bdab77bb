package audit

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

func TestRFC6962Vectors(t *testing.T) {
	if got, want := emptyRoot, testonly.EmptyRootHash(); !bytes.Equal(got, want) {
		t.Fatalf("empty root %x, want %x", got, want)
	}
	r := ranges.NewEmptyRange(0)
	for i, leaf := range testonly.LeafInputs() {
		h := leafHash(leaf)
		if want := rfc6962.DefaultHasher.HashLeaf(leaf); !bytes.Equal(h, want) {
			t.Fatalf("leaf %d: hash %x, want %x", i, h, want)
		}
		if err := r.Append(h, nil); err != nil {
			t.Fatal(err)
		}
		root, _ := r.GetRootHash(nil)
		if want := testonly.RootHashes()[i+1]; !bytes.Equal(root, want) {
			t.Errorf("root of %d leaves %x, want %x", i+1, root, want)
		}
	}
	a, b := leafHash([]byte("a")), leafHash([]byte("b"))
	if got, want := nodeHash(a, b), rfc6962.DefaultHasher.HashChildren(a, b); !bytes.Equal(got, want) {
		t.Errorf("node hash %x, want %x", got, want)
	}
}

func TestAppendReopenVerify(t *testing.T) {
	e := newEnv(t)
	l := e.open(t)
	// Cross a segment boundary, and with concurrent writers.
	appendN(t, l, 0, segmentSize-10, 1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := l.Append(context.Background(), entry(g), entry(g+1)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	want := uint64(segmentSize - 10 + 80)
	if got := l.Size(); got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.verify(t)
	if !r.OK() || r.Entries != want || r.Sealed != want {
		t.Fatalf("verify after close: %+v", r)
	}
	l = e.open(t)
	if got := l.Size(); got != want {
		t.Fatalf("size after reopen %d, want %d", got, want)
	}
	appendN(t, l, int(want), int(want)+300, 7)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(t); !r.OK() || r.Entries != want+300 || r.Checkpoints != 2 {
		t.Fatalf("verify after second close: %+v", r)
	}
}

func TestExportProofs(t *testing.T) {
	e := newEnv(t)
	l := e.open(t)
	defer l.Close()
	appendN(t, l, 0, 3000, 100)
	b, err := l.Export(context.Background(), Filter{Tenant: "acme", SubjectID: "sub_3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 300 {
		t.Fatalf("got %d events of sub_3, want 300", len(b.Events))
	}
	size, err := VerifyBundle(b, testOrigin, e.verifier)
	if err != nil || size != 3000 {
		t.Fatalf("verify bundle: size %d, %v", size, err)
	}
	b.Events[5].Event = bytes.Replace(b.Events[5].Event, []byte("sub_3"), []byte("sub_4"), 1)
	if _, err := VerifyBundle(b, testOrigin, e.verifier); err == nil {
		t.Fatal("a changed event still verifies")
	}
	page, err := l.Export(context.Background(), Filter{SubjectID: "sub_3", After: 1000, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 10 || page.Events[0].Index != 1003 || page.Next == nil || *page.Next != 1103 {
		t.Fatalf("page: %d events, first %d, next %v", len(page.Events), page.Events[0].Index, page.Next)
	}
}

// TestFailClosed: once a write fails, the log refuses every later event and
// Ping says so, until it is reopened; nothing acknowledged is lost.
func TestFailClosed(t *testing.T) {
	e := newEnv(t)
	l := e.open(t)
	appendN(t, l, 0, 10, 5)
	// Swap the segment for a read-only handle on the same file, as a disk
	// that turned read-only would behave.
	ro, err := os.Open(l.w.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	rw := l.w.log
	l.w.log = ro
	if _, err := l.Append(context.Background(), entry(10)); lethe.ErrorCode(err) != lethe.EUNAVAILABLE {
		t.Fatalf("append on a failing disk: got %v, want EUNAVAILABLE", err)
	}
	if err := l.Ping(context.Background()); lethe.ErrorCode(err) != lethe.EUNAVAILABLE {
		t.Errorf("ping after a failed write: got %v, want EUNAVAILABLE", err)
	}
	l.w.log = rw
	if _, err := l.Append(context.Background(), entry(10)); lethe.ErrorCode(err) != lethe.EUNAVAILABLE {
		t.Errorf("append after a failed write: got %v, want EUNAVAILABLE (the log stays closed)", err)
	}
	ro.Close()
	l.Close()
	l = e.open(t)
	defer l.Close()
	if l.Size() != 10 || l.Ping(context.Background()) != nil {
		t.Fatalf("after reopening: size %d, ping %v", l.Size(), l.Ping(context.Background()))
	}
	appendN(t, l, 10, 20, 5)
}

// TestPublish: every checkpoint reaches the file and the webhook the
// operator chose, and a published copy catches a rollback of both the log
// and the key store.
func TestPublish(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		if r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
		}
	}))
	defer hook.Close()
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "external", "checkpoint")
	os.MkdirAll(filepath.Dir(path), 0o700)
	opts := e.options()
	opts.Publish = []Publisher{FilePublisher{Path: path}, WebhookPublisher{URL: hook.URL, Client: hook.Client()}}
	l, err := Open(context.Background(), e.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 100, 10)
	if err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	saved := t.TempDir()
	copyTree(t, e.dir, saved) // the log at 100 entries
	appendN(t, l, 100, 200, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	external, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 2 || !bytes.Equal(got[1], external) {
		t.Errorf("webhook got %d checkpoints, the last equal to the file's: %v", len(got), len(got) == 2 && bytes.Equal(got[1], external))
	}
	mu.Unlock()
	// Roll the log back; the operator could roll the key store back too,
	// but not the published copy.
	os.RemoveAll(e.dir)
	copyTree(t, saved, e.dir)
	r, err := Verify(e.dir, VerifyOptions{Origin: testOrigin, Verifier: e.verifier, Trusted: map[string][]byte{"published checkpoint": external}})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !strings.Contains(r.Problems[0].What, "published checkpoint is for 200 entries but the log holds 100") {
		t.Fatalf("rolled-back log against the published checkpoint: %+v", r.Problems)
	}
}

// copyTree copies the files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
