package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

func TestFileAppendsEveryEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Record(context.Background(), lethe.AuditEvent{Time: time.Now(), Action: "subject.read", SubjectID: "sub_x", Outcome: "ok"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: got %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e lethe.AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action != "subject.read" {
			t.Fatalf("line %d: got %q, %v", n+1, sc.Text(), err)
		}
		n++
	}
	if n != 50 {
		t.Errorf("got %d events, want 50", n)
	}
}

func TestFileFailsClosed(t *testing.T) {
	l, err := OpenFile(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	l.f.Close() // the disk goes away
	if err := l.Record(context.Background(), lethe.AuditEvent{Action: "subject.read"}); err == nil {
		t.Fatal("recording to a closed file succeeded")
	}
	if err := l.Ping(context.Background()); err == nil {
		t.Error("Ping reports a broken log as healthy")
	}
	if err := l.Record(context.Background(), lethe.AuditEvent{Action: "subject.read"}); err == nil {
		t.Error("the log accepted an event after a failed write")
	}
}
