package lethe

import (
	"testing"
	"time"
)

func TestRequestMoves(t *testing.T) {
	for _, c := range []struct {
		from, to RequestState
		ok       bool
	}{
		{RequestReceived, RequestVerified, true},
		{RequestReceived, RequestRunning, false}, // not before verification
		{RequestVerified, RequestAwaitingApproval, true},
		{RequestAwaitingApproval, RequestRunning, false},
		{RequestApproved, RequestRunning, true},
		{RequestRunning, RequestPartial, true},
		{RequestPartial, RequestRunning, true},
		{RequestRunning, RequestCancelled, false}, // work under way finishes
		{RequestCompleted, RequestRunning, false},
		{RequestRejected, RequestVerified, false},
	} {
		if got := c.from.CanMove(c.to); got != c.ok {
			t.Errorf("%s → %s: got %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	for _, s := range []RequestState{RequestCompleted, RequestRejected, RequestCancelled} {
		if s.Open() {
			t.Errorf("%s: open", s)
		}
	}
}

func TestRequestDue(t *testing.T) {
	at := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	if got := RequestDue(at); !got.Equal(time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("due: got %v", got)
	}
	r := &Request{ID: NewRequestID(), ReceivedAt: at, DueAt: RequestDue(at), State: RequestVerified, Version: 2}
	r.DueAt = RequestLatestDue(at)
	if err := CheckRequestUpdate(RequestVerified, 2, r); ErrorCode(err) != EINVALID {
		t.Errorf("extension without a reason: got %v, want %s", err, EINVALID)
	}
	r.ExtendedReason = "the request spans 14 systems"
	if err := CheckRequestUpdate(RequestVerified, 2, r); err != nil {
		t.Errorf("extension by two months: %v", err)
	}
	r.DueAt = RequestLatestDue(at).Add(time.Second)
	if err := CheckRequestUpdate(RequestVerified, 2, r); ErrorCode(err) != EINVALID {
		t.Errorf("extension past three months: got %v, want %s", err, EINVALID)
	}
	r.DueAt = RequestDue(at)
	if err := CheckRequestUpdate(RequestVerified, 3, r); ErrorCode(err) != ECONFLICT {
		t.Errorf("stale version: got %v, want %s", err, ECONFLICT)
	}
}

func TestRequestID(t *testing.T) {
	id := NewRequestID()
	if !ValidRequestID(id) || id == NewRequestID() {
		t.Errorf("got %q", id)
	}
	for _, bad := range []string{"", "req_", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa", "req_AAAAAAAAAAAAAAAAAAAAAAAAAA", "req_aaaaaaaaaaaaaaaaaaaaaaaaa1"} {
		if ValidRequestID(bad) {
			t.Errorf("%q: valid", bad)
		}
	}
}
