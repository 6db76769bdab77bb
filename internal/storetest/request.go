package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// newRequest is a request as the service would create it.
func newRequest(tenant string, typ lethe.RequestType, subject string, at time.Time) *lethe.Request {
	return &lethe.Request{ID: lethe.NewRequestID(), Tenant: tenant, Type: typ, State: lethe.RequestReceived, SubjectID: subject,
		Channel: "staff", CreatedBy: "key_dpo", ContactIndex: []byte("index-" + subject), Contact: []byte("sealed"), Details: []byte(`{}`),
		ReceivedAt: at, DueAt: lethe.RequestDue(at), UpdatedAt: at}
}

// TestRequestStore runs the lethe.RequestStore contract against stores
// that newStore returns; each call must return one on a fresh database.
func TestRequestStore(t *testing.T, newStore func(t *testing.T) lethe.RequestStore) {
	at := time.Date(2026, 1, 31, 9, 30, 0, 123000, time.UTC)

	t.Run("create, read, merge duplicates", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		r := newRequest("acme", lethe.RequestErasure, "sub_a", at)
		if got, merged, err := s.CreateRequest(ctx, r); err != nil || merged || got.ID != r.ID || got.Version != 1 {
			t.Fatalf("create: got %+v, %v, %v", got, merged, err)
		}
		back, err := s.Request(ctx, "acme", r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if back.Type != r.Type || back.State != lethe.RequestReceived || !back.ReceivedAt.Equal(at) || !back.DueAt.Equal(lethe.RequestDue(at)) ||
			string(back.Contact) != "sealed" || string(back.ContactIndex) != "index-sub_a" || back.Version != 1 || back.VerifiedAt != nil {
			t.Errorf("read: got %+v", back)
		}
		if back.DueAt.Month() != time.March || back.DueAt.Day() != 3 {
			t.Errorf("due: got %v, want 3 March (31 January + one month)", back.DueAt)
		}
		// The same subject and type while it is open: merged.
		dup := newRequest("acme", lethe.RequestErasure, "sub_a", at.Add(time.Hour))
		got, merged, err := s.CreateRequest(ctx, dup)
		if err != nil || !merged || got.ID != r.ID {
			t.Fatalf("duplicate: got %v, merged %v, %v, want %s merged", got, merged, err, r.ID)
		}
		if _, err := s.Request(ctx, "acme", dup.ID); err == nil {
			t.Error("the duplicate was stored")
		}
		// Another type, subject or tenant is not a duplicate.
		for _, other := range []*lethe.Request{
			newRequest("acme", lethe.RequestAccess, "sub_a", at),
			newRequest("acme", lethe.RequestErasure, "sub_b", at),
			newRequest("globex", lethe.RequestErasure, "sub_a", at),
		} {
			if _, merged, err := s.CreateRequest(ctx, other); err != nil || merged {
				t.Errorf("%s %s %s: merged %v, %v", other.Tenant, other.Type, other.SubjectID, merged, err)
			}
		}
		// Without a subject, the contact index tells duplicates.
		a := newRequest("acme", lethe.RequestAccess, "", at)
		a.ContactIndex = []byte("someone")
		b := newRequest("acme", lethe.RequestAccess, "", at)
		b.ContactIndex = []byte("someone")
		s.CreateRequest(ctx, a)
		if got, merged, err := s.CreateRequest(ctx, b); err != nil || !merged || got.ID != a.ID {
			t.Errorf("duplicate by contact: got %v, %v, %v", got, merged, err)
		}
		if _, err := s.Request(ctx, "globex", r.ID); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("another tenant's request: got %v, want %s", err, lethe.ENOTFOUND)
		}
	})

	t.Run("update moves state once", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		r := newRequest("acme", lethe.RequestAccess, "sub_a", at)
		s.CreateRequest(ctx, r)
		stale := *r
		v := at.Add(time.Minute)
		r.State, r.VerifiedAt, r.UpdatedAt = lethe.RequestVerified, &v, v
		if err := s.UpdateRequest(ctx, r); err != nil || r.Version != 2 {
			t.Fatalf("verify: %v, version %d", err, r.Version)
		}
		stale.State = lethe.RequestCancelled
		if err := s.UpdateRequest(ctx, &stale); !isCode(err, lethe.ECONFLICT) {
			t.Errorf("stale update: got %v, want %s", err, lethe.ECONFLICT)
		}
		r.State = lethe.RequestCompleted // verified cannot complete without running
		if err := s.UpdateRequest(ctx, r); !isCode(err, lethe.EINVALID) {
			t.Errorf("verified → completed: got %v, want %s", err, lethe.EINVALID)
		}
		r.State = lethe.RequestVerified
		r.DueAt, r.ExtendedReason, r.Details = lethe.RequestLatestDue(at), "many systems", []byte(`{"reason":"other"}`)
		if err := s.UpdateRequest(ctx, r); err != nil {
			t.Fatalf("extend: %v", err)
		}
		back, _ := s.Request(ctx, "acme", r.ID)
		if string(back.Details) != `{"reason":"other"}` {
			t.Errorf("details after the update: %q", back.Details)
		}
		if back.State != lethe.RequestVerified || back.ExtendedReason != "many systems" || !back.DueAt.Equal(lethe.RequestLatestDue(at)) || back.Version != 3 || back.VerifiedAt == nil || !back.VerifiedAt.Equal(v) {
			t.Errorf("after extend: got %+v", back)
		}
		// Once closed, a new request of the same kind is no duplicate.
		closed := at.Add(2 * time.Minute)
		r.State, r.ClosedAt, r.Reason = lethe.RequestCancelled, &closed, "asked by the person"
		if err := s.UpdateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, merged, err := s.CreateRequest(ctx, newRequest("acme", lethe.RequestAccess, "sub_a", at)); err != nil || merged {
			t.Errorf("after close: merged %v, %v", merged, err)
		}
	})

	t.Run("concurrent duplicates merge into one", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				got, _, err := s.CreateRequest(t.Context(), newRequest("acme", lethe.RequestErasure, "sub_race", at))
				errs[i] = err
				if got != nil {
					ids[i] = got.ID
				}
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Errorf("create %d: %s, %v, want %s", i, ids[i], errs[i], ids[0])
			}
		}
	})

	t.Run("list by due date", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		at := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC) // no month ends to normalise
		var want []string
		for i := range 7 {
			r := newRequest("acme", lethe.RequestAccess, fmt.Sprintf("sub_%d", i), at.AddDate(0, 0, 6-i))
			s.CreateRequest(ctx, r)
			want = append([]string{r.ID}, want...)
		}
		s.CreateRequest(ctx, newRequest("globex", lethe.RequestAccess, "sub_x", at))
		var got []string
		f := lethe.RequestFilter{Tenant: "acme", Limit: 3}
		for {
			page, err := s.ListRequests(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, r := range page {
				got = append(got, r.ID)
			}
			last := page[len(page)-1]
			f.AfterDue, f.AfterID = last.DueAt, last.ID
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pages: got %v, want %v", got, want)
		}
		due, err := s.ListRequests(ctx, lethe.RequestFilter{Tenant: "acme", DueBefore: lethe.RequestDue(at.AddDate(0, 0, 2)), States: []lethe.RequestState{lethe.RequestReceived}})
		if err != nil || len(due) != 2 {
			t.Errorf("due before: got %d, %v, want 2", len(due), err)
		}
		one, err := s.ListRequests(ctx, lethe.RequestFilter{Tenant: "acme", SubjectID: "sub_3"})
		if err != nil || len(one) != 1 {
			t.Errorf("by subject: got %d, %v", len(one), err)
		}
		if _, err := s.ListRequests(ctx, lethe.RequestFilter{}); !isCode(err, lethe.EINVALID) {
			t.Errorf("no tenant: got %v, want %s", err, lethe.EINVALID)
		}
		all, err := s.ListRequests(ctx, lethe.RequestFilter{AllTenants: true, Limit: 100})
		if err != nil || len(all) != 8 {
			t.Errorf("all tenants: got %d, %v, want 8", len(all), err)
		}
	})

	t.Run("tasks", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		r := newRequest("acme", lethe.RequestErasure, "sub_a", at)
		s.CreateRequest(ctx, r)
		tasks := []lethe.RequestTask{
			{RequestID: r.ID, System: "shop", Step: 0, State: lethe.TaskPending, UpdatedAt: at},
			{RequestID: r.ID, System: "mailer", Step: 1, State: lethe.TaskPending, UpdatedAt: at},
			{RequestID: r.ID, System: "cache", Step: 0, State: lethe.TaskPending, UpdatedAt: at},
		}
		if err := s.PutTasks(ctx, tasks); err != nil {
			t.Fatal(err)
		}
		tasks[0].State, tasks[0].Attempts, tasks[0].Report = lethe.TaskDone, 1, []byte(`{"steps":[]}`)
		tasks[1].State, tasks[1].Attempts, tasks[1].Error = lethe.TaskFailed, 3, "system mailer: unreachable"
		if err := s.PutTasks(ctx, tasks[:2]); err != nil {
			t.Fatal(err)
		}
		got, err := s.Tasks(ctx, r.ID)
		if err != nil || len(got) != 3 {
			t.Fatalf("tasks: %v, %v", got, err)
		}
		if got[0].System != "cache" || got[1].System != "shop" || got[2].System != "mailer" {
			t.Errorf("order: got %s, %s, %s, want cache, shop, mailer", got[0].System, got[1].System, got[2].System)
		}
		if got[1].State != lethe.TaskDone || string(got[1].Report) != `{"steps":[]}` || got[2].Attempts != 3 || got[2].Error == "" {
			t.Errorf("got %+v", got)
		}
		if err := s.PutTasks(ctx, []lethe.RequestTask{{RequestID: lethe.NewRequestID(), System: "x", State: lethe.TaskPending, UpdatedAt: at}}); err == nil {
			t.Error("a task of no request was stored")
		}
	})

	t.Run("one finisher at a time", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		r := newRequest("acme", lethe.RequestErasure, "sub_a", at)
		s.CreateRequest(ctx, r)
		lease := at.Add(2 * time.Minute)
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				ok, err := s.ClaimFinish(ctx, "acme", r.ID, fmt.Sprint("job:", i), at, lease)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d claimants won, want 1", won.Load())
		}
		holder := ""
		for i := range 8 {
			if ok, _ := s.ClaimFinish(ctx, "acme", r.ID, fmt.Sprint("job:", i), at.Add(time.Minute), lease); ok {
				holder = fmt.Sprint("job:", i) // only the holder may claim again
			}
		}
		if holder == "" {
			t.Error("the holder could not claim again")
		}
		if ok, err := s.ClaimFinish(ctx, "acme", r.ID, "job:late", lease, lease.Add(2*time.Minute)); err != nil || !ok {
			t.Errorf("after the lease ran out: %v, %v", ok, err)
		}
		if _, err := s.ClaimFinish(ctx, "acme", lethe.NewRequestID(), "job:x", at, lease); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("an unknown request: got %v, want %s", err, lethe.ENOTFOUND)
		}
		if _, err := s.ClaimFinish(ctx, "globex", r.ID, "job:x", lease.Add(time.Hour), lease.Add(2*time.Hour)); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("another tenant's request: got %v, want %s", err, lethe.ENOTFOUND)
		}
	})

	t.Run("archives", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		a, b := newRequest("acme", lethe.RequestAccess, "sub_a", at), newRequest("acme", lethe.RequestAccess, "sub_b", at)
		s.CreateRequest(ctx, a)
		s.CreateRequest(ctx, b)
		later := at.Add(24 * time.Hour)
		for _, r := range []*lethe.Request{a, b} {
			if err := s.PutArchive(ctx, r.ID, "part:shop", []byte("first"), later); err != nil {
				t.Fatal(err)
			}
			if err := s.PutArchive(ctx, r.ID, "part:shop", []byte("sealed shop"), later); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutArchive(ctx, lethe.NewRequestID(), "part:shop", []byte("x"), later); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("a piece of no request: got %v, want %s", err, lethe.ENOTFOUND)
		}
		if got, err := s.Archive(ctx, a.ID, "part:shop"); err != nil || string(got) != "sealed shop" {
			t.Errorf("read back: %q, %v", got, err)
		}
		if _, err := s.Archive(ctx, a.ID, "part:cache"); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("a missing piece: got %v, want %s", err, lethe.ENOTFOUND)
		}
		// Taken once, by one of many racing.
		s.PutArchive(ctx, a.ID, "archive.zip", []byte("zip"), at.Add(time.Hour))
		var got atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if data, err := s.TakeArchive(ctx, a.ID, "archive.zip"); err == nil && string(data) == "zip" {
					got.Add(1)
				} else if !isCode(err, lethe.ENOTFOUND) {
					t.Errorf("take: %v", err)
				}
			})
		}
		wg.Wait()
		if got.Load() != 1 {
			t.Errorf("the archive was taken %d times", got.Load())
		}
		// Each piece goes when it expires, and no sooner.
		s.PutArchive(ctx, b.ID, "download", []byte("link"), at.Add(time.Hour))
		if n, err := s.PruneArchives(ctx, at.Add(time.Minute)); err != nil || n != 0 {
			t.Errorf("prune before expiry: %d, %v", n, err)
		}
		if n, err := s.PruneArchives(ctx, at.Add(time.Hour)); err != nil || n != 1 {
			t.Errorf("prune at the link's expiry: %d, %v", n, err)
		}
		if _, err := s.Archive(ctx, b.ID, "download"); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("an expired piece: got %v", err)
		}
		if _, err := s.Archive(ctx, b.ID, "part:shop"); err != nil {
			t.Errorf("a piece not yet expired, after the prune: %v", err)
		}
		if err := s.DeleteArchive(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Archive(ctx, a.ID, "part:shop"); !isCode(err, lethe.ENOTFOUND) {
			t.Errorf("after delete: got %v", err)
		}
		if n, err := s.PruneArchives(ctx, later); err != nil || n != 1 {
			t.Errorf("prune at the parts' expiry: %d, %v", n, err)
		}
	})
}

// isCode reports whether err carries the lethe error code code.
func isCode(err error, code string) bool { return lethe.ErrorCode(err) == code }

// TestRequestCodes runs the verification-code part of the
// lethe.RequestStore contract.
func TestRequestCodes(t *testing.T, newStore func(t *testing.T) lethe.RequestStore) {
	at := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	s := newStore(t)
	ctx := t.Context()
	r := newRequest("acme", lethe.RequestAccess, "sub_a", at)
	s.CreateRequest(ctx, r)
	if _, err := s.AttemptCode(ctx, r.ID); !isCode(err, lethe.ENOTFOUND) {
		t.Errorf("no code: got %v, want %s", err, lethe.ENOTFOUND)
	}
	c := &lethe.RequestCode{RequestID: r.ID, Hash: []byte("h1"), ExpiresAt: at.Add(15 * time.Minute)}
	if err := s.PutCode(ctx, c); err != nil || c.Issued != 1 {
		t.Fatalf("put: %v, issued %d", err, c.Issued)
	}
	// Every attempt is counted, also concurrent ones.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { s.AttemptCode(ctx, r.ID) })
	}
	wg.Wait()
	got, err := s.AttemptCode(ctx, r.ID)
	if err != nil || got.Attempts != 11 || string(got.Hash) != "h1" || !got.ExpiresAt.Equal(at.Add(15*time.Minute)) {
		t.Errorf("after 11 attempts: got %+v, %v", got, err)
	}
	// A new code resets the attempts and counts the codes issued.
	c2 := &lethe.RequestCode{RequestID: r.ID, Hash: []byte("h2"), ExpiresAt: at.Add(time.Hour)}
	if err := s.PutCode(ctx, c2); err != nil || c2.Issued != 2 {
		t.Fatalf("second code: %v, issued %d", err, c2.Issued)
	}
	if got, _ := s.AttemptCode(ctx, r.ID); got.Attempts != 1 || string(got.Hash) != "h2" {
		t.Errorf("second code: got %+v", got)
	}
	if err := s.DeleteCode(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttemptCode(ctx, r.ID); !isCode(err, lethe.ENOTFOUND) {
		t.Errorf("deleted code: got %v", err)
	}
	if err := s.PutCode(ctx, &lethe.RequestCode{RequestID: lethe.NewRequestID(), Hash: []byte("x"), ExpiresAt: at}); !isCode(err, lethe.ENOTFOUND) {
		t.Errorf("code of no request: got %v, want %s", err, lethe.ENOTFOUND)
	}
}
