package audit

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

func TestPrune(t *testing.T) {
	e := newEnv(t)
	l := e.open(t)
	n := 2*segmentSize + 100
	appendN(t, l, 0, n, 5000)
	base := event(0).Time
	// Segment 0's newest event is 65.535 s after base, segment 1's 131 s.
	keep, err := l.Prune(context.Background(), base.Add(70*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if keep != segmentSize || l.Pruned() != segmentSize {
		t.Fatalf("first kept %d, want %d", keep, segmentSize)
	}
	err = l.Entries(0, 1, func(uint64, []byte) error { return nil })
	if lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Fatalf("reading a pruned entry: got %v, want ENOTFOUND", err)
	}
	// Nothing more is old enough; the open segment is never pruned.
	if keep, err := l.Prune(context.Background(), base.Add(time.Hour)); err != nil || keep != 2*segmentSize {
		t.Fatalf("second prune: kept from %d, %v; want %d", keep, err, 2*segmentSize)
	}
	b, err := l.Export(context.Background(), Filter{SubjectID: "sub_1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBundle(b, testOrigin, e.verifier); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.verify(t)
	if !r.OK() || r.Pruned != 2*segmentSize || r.Entries != uint64(n+2) {
		t.Fatalf("verify after prune: %+v", r)
	}
	l = e.open(t)
	defer l.Close()
	appendN(t, l, n+2, n+10, 3)
	if err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(t); !r.OK() || r.Entries != uint64(n+10) {
		t.Fatalf("verify after reopen: %+v", r)
	}
}
