package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TestConsentStore runs the lethe.ConsentStore contract against stores that
// newStore returns; each call must return one on a fresh database.
func TestConsentStore(t *testing.T, newStore func(t *testing.T) lethe.ConsentStore) {
	t.Run("empty ledger", func(t *testing.T) {
		s := newStore(t)
		checkConsentRevision(t, s, 0)
		if got, err := s.ConsentSince(t.Context(), 0, 10); err != nil || got == nil || len(got) != 0 {
			t.Errorf("since 0: got %v (nil: %t), %v, want an empty slice", got, got == nil, err)
		}
		if got, err := s.ConsentHistory(t.Context(), "acme", "sub_1"); err != nil || got == nil || len(got) != 0 {
			t.Errorf("history: got %v (nil: %t), %v, want an empty slice", got, got == nil, err)
		}
	})

	t.Run("append and read back", func(t *testing.T) {
		s := newStore(t)
		events := []lethe.ConsentEvent{
			consentEvent("acme", "sub_1", lethe.ConsentGrant, 1),
			consentEvent("acme", "sub_1", lethe.ConsentWithdraw, 2),
			consentEvent("acme", "sub_1", lethe.ConsentRestrict, 3),
			consentEvent("acme", "sub_1", lethe.ConsentObject, 4),
		}
		// Every field set, the grant with an expiry in another zone;
		// the restriction has no purpose, as consent.go prescribes.
		expires := time.Date(2031, 2, 3, 4, 5, 6, 789_123_456, time.FixedZone("UTC-5", -5*3600))
		events[0].ExpiresAt = &expires
		events[2].Purpose = ""
		want := appendConsent(t, s, 1, events...)
		checkConsentRevision(t, s, 4)
		got, err := s.ConsentSince(t.Context(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		checkConsentEvents(t, "since 0", got, want)
		checkConsentHistory(t, s, "acme", "sub_1", want)
	})

	t.Run("revisions are contiguous across appends", func(t *testing.T) {
		s := newStore(t)
		var want []lethe.ConsentEvent
		next := uint64(1)
		for i, n := range []int{1, 2, 5, 1, 3} {
			events := make([]lethe.ConsentEvent, n)
			for j := range events {
				events[j] = consentEvent("acme", fmt.Sprintf("sub_%d", j), lethe.ConsentGrant, 10*i+j)
			}
			want = append(want, appendConsent(t, s, next, events...)...)
			next += uint64(n)
			checkConsentRevision(t, s, next-1)
		}
		got, err := s.ConsentSince(t.Context(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		checkConsentEvents(t, "since 0", got, want)
	})

	t.Run("history per subject and tenant", func(t *testing.T) {
		s := newStore(t)
		want := map[[2]string][]lethe.ConsentEvent{}
		for i := range 12 {
			tenant, subject := []string{"acme", "globex"}[i%2], []string{"sub_1", "sub_2", "sub_3"}[i%3]
			kind := []string{lethe.ConsentGrant, lethe.ConsentWithdraw, lethe.ConsentObject, lethe.ConsentLiftObject}[i%4]
			e := appendConsent(t, s, uint64(i+1), consentEvent(tenant, subject, kind, i))
			want[[2]string{tenant, subject}] = append(want[[2]string{tenant, subject}], e...)
		}
		for _, tenant := range []string{"acme", "globex"} {
			for _, subject := range []string{"sub_1", "sub_2", "sub_3"} {
				checkConsentHistory(t, s, tenant, subject, want[[2]string{tenant, subject}])
			}
		}
		checkConsentHistory(t, s, "acme", "sub_none", nil)
		checkConsentHistory(t, s, "initech", "sub_1", nil)
	})

	t.Run("since pages", func(t *testing.T) {
		s := newStore(t)
		events := make([]lethe.ConsentEvent, 25)
		for i := range events {
			events[i] = consentEvent("acme", fmt.Sprintf("sub_%d", i%4), lethe.ConsentGrant, i)
		}
		want := appendConsent(t, s, 1, events...)
		for _, tc := range []struct {
			after uint64
			limit int
			from  int // want[from:to]
			to    int
		}{
			{0, 10, 0, 10},
			{10, 10, 10, 20},
			{20, 10, 20, 25},
			{25, 10, 25, 25},
			{5, 3, 5, 8},
			{24, 1, 24, 25},
			{0, lethe.ConsentEventsLimit, 0, 25},
			{1000, 10, 25, 25},
			{math.MaxInt64, 10, 25, 25},
			{math.MaxUint64, 10, 25, 25},
		} {
			t.Run(fmt.Sprintf("after %d limit %d", tc.after, tc.limit), func(t *testing.T) {
				got, err := s.ConsentSince(t.Context(), tc.after, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil {
					t.Error("got nil, want a slice")
				}
				checkConsentEvents(t, "page", got, want[tc.from:tc.to])
			})
		}
	})

	t.Run("the limit", func(t *testing.T) {
		s := newStore(t)
		events := make([]lethe.ConsentEvent, lethe.ConsentEventsLimit)
		for i := range events {
			events[i] = consentEvent("acme", fmt.Sprintf("sub_%d", i%100), lethe.ConsentGrant, i)
		}
		want := appendConsent(t, s, 1, events...)
		checkConsentRevision(t, s, lethe.ConsentEventsLimit)
		got, err := s.ConsentSince(t.Context(), 0, lethe.ConsentEventsLimit)
		if err != nil {
			t.Fatal(err)
		}
		checkConsentEvents(t, "since 0", got, want)
	})

	t.Run("the erasure of a whole tenant has no subject", func(t *testing.T) {
		s := newStore(t)
		ev := lethe.ConsentEvent{Tenant: "acme", Kind: lethe.ConsentErased, At: time.Now().UTC(), Channel: "erasure", KeyID: "lethe"}
		if _, err := s.AppendConsent(t.Context(), []lethe.ConsentEvent{ev}); err != nil {
			t.Fatalf("tenant erasure: %v", err)
		}
		got, err := s.ConsentSince(t.Context(), 0, 10)
		if err != nil || len(got) != 1 || got[0].SubjectID != "" || got[0].Kind != lethe.ConsentErased {
			t.Fatalf("read back: %+v, %v", got, err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		s := newStore(t)
		before := appendConsent(t, s, 1, consentEvent("acme", "sub_1", lethe.ConsentGrant, 0))
		one := func(edit func(e *lethe.ConsentEvent)) []lethe.ConsentEvent {
			e := consentEvent("acme", "sub_2", lethe.ConsentGrant, 1)
			edit(&e)
			return []lethe.ConsentEvent{e}
		}
		many := make([]lethe.ConsentEvent, lethe.ConsentEventsLimit+1)
		for i := range many {
			many[i] = consentEvent("acme", "sub_2", lethe.ConsentGrant, i)
		}
		// A bad event after good ones spoils the whole append.
		lastBad := []lethe.ConsentEvent{
			consentEvent("acme", "sub_2", lethe.ConsentGrant, 1),
			consentEvent("acme", "sub_2", lethe.ConsentWithdraw, 2),
			consentEvent("acme", "sub_2", "revoke", 3),
		}
		for _, tc := range []struct {
			name   string
			events []lethe.ConsentEvent
		}{
			{"nil", nil},
			{"no events", []lethe.ConsentEvent{}},
			{"too many events", many},
			{"empty kind", one(func(e *lethe.ConsentEvent) { e.Kind = "" })},
			{"unknown kind", one(func(e *lethe.ConsentEvent) { e.Kind = "Grant" })},
			{"empty subject", one(func(e *lethe.ConsentEvent) { e.SubjectID = "" })},
			{"empty tenant", one(func(e *lethe.ConsentEvent) { e.Tenant = "" })},
			{"upper-case tenant", one(func(e *lethe.ConsentEvent) { e.Tenant = "ACME" })},
			{"tenant with a space", one(func(e *lethe.ConsentEvent) { e.Tenant = "ac me" })},
			{"NUL in a field", one(func(e *lethe.ConsentEvent) { e.Reason = "other\x00" })},
			{"invalid UTF-8 in a field", one(func(e *lethe.ConsentEvent) { e.Channel = "web\xff" })},
			{"last event bad", lastBad},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.AppendConsent(t.Context(), tc.events)
				wantCode(t, err, lethe.EINVALID)
				for _, e := range tc.events {
					for _, secret := range []string{e.IPHMAC, e.AgentHMAC} {
						if secret != "" && (strings.Contains(err.Error(), secret) || strings.Contains(lethe.ErrorMessage(err), secret)) {
							t.Fatalf("error %q holds an HMAC", err)
						}
					}
					if e.Revision != 0 {
						t.Errorf("revision of a refused event: got %d, want 0", e.Revision)
					}
				}
				checkConsentRevision(t, s, 1)
				got, err := s.ConsentSince(t.Context(), 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				checkConsentEvents(t, "since 0", got, before)
			})
		}
		for _, limit := range []int{0, -1, math.MinInt, lethe.ConsentEventsLimit + 1, math.MaxInt} {
			_, err := s.ConsentSince(t.Context(), 0, limit)
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Errorf("since 0 limit %d: got %v, want %s", limit, err, lethe.EINVALID)
			}
		}
	})

	// Writers append at once while a reader tails the ledger, as the
	// consent service's change feed does. The tail must see every revision
	// once, in order: had an append committed before another with a smaller
	// revision, the tail would step past that revision and never see it.
	t.Run("concurrent appends and a tail", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		const writers, appends = 8, 50
		size := func(w, i int) int { return (w*7+i)%3 + 1 } // 1 to 3 events
		total := 0
		for w := range writers {
			for i := range appends {
				total += size(w, i)
			}
		}
		// appended[w][i] is writer w's i-th append, with its revisions.
		appended := make([][][]lethe.ConsentEvent, writers)
		var wg sync.WaitGroup
		for w := range writers {
			appended[w] = make([][]lethe.ConsentEvent, appends)
			wg.Go(func() {
				for i := range appends {
					events := make([]lethe.ConsentEvent, size(w, i))
					for j := range events {
						events[j] = consentEvent("acme", fmt.Sprintf("sub_%d_%d_%d", w, i, j), lethe.ConsentGrant, j)
					}
					first, err := s.AppendConsent(ctx, events)
					if err != nil {
						t.Errorf("writer %d append %d: %v", w, i, err)
						return
					}
					for j, e := range events {
						if e.Revision != first+uint64(j) {
							t.Errorf("writer %d append %d event %d: got revision %d, want %d", w, i, j, e.Revision, first+uint64(j))
						}
					}
					appended[w][i] = events
				}
			})
		}
		writersDone := make(chan struct{})
		var seen []lethe.ConsentEvent
		tailDone := make(chan struct{})
		go func() {
			defer close(tailDone)
			var last uint64
			for last < uint64(total) {
				// Once the writers are done, every append has committed, so
				// a read after that which finds nothing new is stuck.
				var finished bool
				select {
				case <-writersDone:
					finished = true
				default:
				}
				page, err := s.ConsentSince(ctx, last, 100)
				if err != nil {
					t.Errorf("tail since %d: %v", last, err)
					return
				}
				for _, e := range page {
					if e.Revision != last+1 {
						t.Errorf("tail after %d: got revision %d, want %d", last, e.Revision, last+1)
						return
					}
					last = e.Revision
					seen = append(seen, e)
				}
				if len(page) == 0 {
					if finished {
						t.Errorf("tail: stuck at revision %d of %d", last, total)
						return
					}
					runtime.Gosched()
				}
			}
		}()
		wg.Wait()
		close(writersDone)
		<-tailDone
		if t.Failed() {
			return
		}
		checkConsentRevision(t, s, uint64(total))
		// Every appended event is where its revision says, exactly once.
		byRevision := make([]*lethe.ConsentEvent, total+1)
		for w := range appended {
			for _, events := range appended[w] {
				for j := range events {
					e := &events[j]
					if e.Revision < 1 || e.Revision > uint64(total) || byRevision[e.Revision] != nil {
						t.Fatalf("revision %d: given twice or out of range", e.Revision)
					}
					byRevision[e.Revision] = e
				}
			}
		}
		if len(seen) != total {
			t.Fatalf("tail: got %d events, want %d", len(seen), total)
		}
		for _, e := range seen {
			if want := byRevision[e.Revision]; e.SubjectID != want.SubjectID {
				t.Errorf("revision %d: got subject %s, want %s", e.Revision, e.SubjectID, want.SubjectID)
			}
		}
	})
}

// TestConsentReopen checks that the ledger survives closing its database
// and opening it again: each call of open must return a store on the same
// database, and a function that closes it.
func TestConsentReopen(t *testing.T, open func(t *testing.T) (s lethe.ConsentStore, close func() error)) {
	s, closeFirst := open(t)
	want := appendConsent(t, s, 1,
		consentEvent("acme", "sub_1", lethe.ConsentGrant, 1),
		consentEvent("acme", "sub_1", lethe.ConsentWithdraw, 2),
		consentEvent("acme", "sub_2", lethe.ConsentErased, 3))
	if err := closeFirst(); err != nil {
		t.Fatal(err)
	}
	s, closeSecond := open(t)
	defer func() {
		if err := closeSecond(); err != nil {
			t.Error(err)
		}
	}()
	checkConsentRevision(t, s, 3)
	got, err := s.ConsentSince(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkConsentEvents(t, "since 0 after reopen", got, want)
	checkConsentHistory(t, s, "acme", "sub_1", want[:2])
	appendConsent(t, s, 4, consentEvent("acme", "sub_1", lethe.ConsentGrant, 4))
}

// BenchmarkConsentStore measures s, a store on an empty database:
// AppendConsent of one event at a time, as the API records a consent, and
// ConsentSince reading 10,000 events page by page, as the consent service
// catches up with the ledger (ns/event is the time per event read).
func BenchmarkConsentStore(b *testing.B, s lethe.ConsentStore) {
	ctx := b.Context()
	b.Run("AppendConsent", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			e := consentEvent("acme", fmt.Sprintf("sub_%d", i%1000), lethe.ConsentGrant, i)
			if _, err := s.AppendConsent(ctx, []lethe.ConsentEvent{e}); err != nil {
				b.Fatal(err)
			}
		}
	})
	const read = 10_000
	for _, page := range []int{100, 1000} {
		b.Run(fmt.Sprintf("ConsentSince/page=%d", page), func(b *testing.B) {
			start, err := s.ConsentRevision(ctx)
			if err != nil {
				b.Fatal(err)
			}
			events := make([]lethe.ConsentEvent, read)
			for i := range events {
				events[i] = consentEvent("acme", fmt.Sprintf("sub_%d", i%1000), lethe.ConsentGrant, i)
			}
			if _, err := s.AppendConsent(ctx, events); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				after := start
				for n := 0; n < read; {
					got, err := s.ConsentSince(ctx, after, page)
					if err != nil {
						b.Fatal(err)
					}
					n += len(got)
					after = got[len(got)-1].Revision
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*read), "ns/event")
		})
	}
}

// consentEvent returns an event of the given kind with every field set, all
// derived from tenant, subject and i, at a time with nanoseconds in a zone
// other than UTC (the stores keep microseconds and return UTC).
func consentEvent(tenant, subject, kind string, i int) lethe.ConsentEvent {
	hmac := func(what string) string {
		h := sha256.Sum256(fmt.Appendf(nil, "%s %s %s %d", what, tenant, subject, i))
		return hex.EncodeToString(h[:])
	}
	e := lethe.ConsentEvent{
		Tenant:    tenant,
		SubjectID: subject,
		Purpose:   fmt.Sprintf("purpose_%d", i%5),
		Kind:      kind,
		At:        time.Date(2025, 5, 17, 9, 30, i%60, 123_456_789, time.FixedZone("CEST", 2*3600)),
		Channel:   "web_form",
		IPHMAC:    hmac("ip"),
		AgentHMAC: hmac("user agent"),
		KeyID:     "key_recorder",
	}
	switch kind {
	case lethe.ConsentGrant:
		e.PolicyVersion, e.TextHash = fmt.Sprintf("v%d", i%3+1), hmac("policy text")
	case lethe.ConsentRestrict, lethe.ConsentObject:
		e.Reason = lethe.ConsentReasons[i%len(lethe.ConsentReasons)]
	}
	if kind == lethe.ConsentRestrict || kind == lethe.ConsentUnrestrict || kind == lethe.ConsentErased {
		e.Purpose = ""
	}
	return e
}

// appendConsent appends events to s, checks that they were given the
// revisions from first on, and returns them with their revisions.
func appendConsent(t *testing.T, s lethe.ConsentStore, first uint64, events ...lethe.ConsentEvent) []lethe.ConsentEvent {
	t.Helper()
	got, err := s.AppendConsent(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	if got != first {
		t.Errorf("first revision: got %d, want %d", got, first)
	}
	for i, e := range events {
		if e.Revision != first+uint64(i) {
			t.Errorf("event %d revision: got %d, want %d", i, e.Revision, first+uint64(i))
		}
	}
	return events
}

func checkConsentRevision(t *testing.T, s lethe.ConsentStore, want uint64) {
	t.Helper()
	if got, err := s.ConsentRevision(t.Context()); err != nil || got != want {
		t.Errorf("revision: got %d, %v, want %d, <nil>", got, err, want)
	}
}

func checkConsentHistory(t *testing.T, s lethe.ConsentStore, tenant, subject string, want []lethe.ConsentEvent) {
	t.Helper()
	got, err := s.ConsentHistory(t.Context(), tenant, subject)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Errorf("history of %s/%s: got nil, want a slice", tenant, subject)
	}
	checkConsentEvents(t, "history of "+tenant+"/"+subject, got, want)
}

// checkConsentEvents compares events field by field, the times at
// microsecond precision and in UTC.
func checkConsentEvents(t *testing.T, what string, got, want []lethe.ConsentEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		checkTime(t, fmt.Sprintf("%s: event %d at", what, i), &g.At, &w.At)
		checkTime(t, fmt.Sprintf("%s: event %d expires_at", what, i), g.ExpiresAt, w.ExpiresAt)
		g.At, w.At, g.ExpiresAt, w.ExpiresAt = time.Time{}, time.Time{}, nil, nil
		if g != w {
			t.Errorf("%s: event %d: got %+v, want %+v", what, i, g, w)
		}
	}
}
