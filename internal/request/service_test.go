package request_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// directory is the tenant's subjects by email, as the vault would find
// them.
type directory map[string]string

func (d directory) FindSubject(_ context.Context, _, kind, value string) (string, error) {
	if kind != lethe.KindEmail {
		return "", nil
	}
	return d[value], nil
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	svc    *request.Service
	store  *sqlite.RequestStore
	outbox *mail.Outbox
	clock  *clock
	audit  string // the audit log's directory
}

const (
	known   = "ada@example.test"
	unknown = "nobody@example.test"
	adaID   = "sub_adaadaadaadaadaadaadaadaa"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	data, err := sqlite.OpenData(ctx, filepath.Join(dir, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close(); keysDB.Close() })
	outbox, err := mail.NewOutbox(filepath.Join(dir, "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	log := audittest.Open(t, filepath.Join(dir, "audit"), sqlite.NewKeyStore(keysDB))
	key := vault.NewKey()
	e := &env{store: sqlite.NewRequestStore(data), outbox: outbox, clock: &clock{t: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)}, audit: filepath.Join(dir, "audit")}
	e.svc, err = request.New(request.Config{
		Store: e.store, Subjects: directory{known: adaID}, Mail: outbox, Audit: log, Key: bytes.Repeat([]byte{7}, 32),
		Seal:         func(p, ad []byte) []byte { return vault.Seal(&key, p, ad) },
		Open:         func(s, ad []byte) ([]byte, error) { return vault.Open(&key, s, ad) },
		Organisation: "Example Shop Ltd", Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var codeRE = regexp.MustCompile(`your code is: (\d{8})`)

// lastCode returns the code in the newest message to addr.
func (e *env) lastCode(t *testing.T, addr string) string {
	t.Helper()
	names, err := e.outbox.List()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		m, err := mail.ReadMessage(names[i])
		if err != nil {
			t.Fatal(err)
		}
		if m.To == addr {
			if c := codeRE.FindStringSubmatch(m.Text); c != nil {
				return c[1]
			}
		}
	}
	t.Fatal("no code was sent")
	return ""
}

func TestSelfRequestVerified(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r, err := e.svc.Create(ctx, lethe.RequestSelf, "default", lethe.RequestAsk{Type: lethe.RequestAccess, Contact: " Ada@Example.test "})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != lethe.RequestReceived || r.SubjectID != adaID || r.Channel != "self" || !r.DueAt.Equal(e.clock.Now().AddDate(0, 1, 0)) {
		t.Errorf("created: got %+v", r)
	}
	code := e.lastCode(t, known)
	wrong := "00000000"
	if wrong == code {
		wrong = "00000001"
	}
	if _, err := e.svc.Verify(ctx, "default", r.ID, wrong); lethe.ErrorCode(err) != lethe.EFORBIDDEN || !strings.Contains(err.Error(), "4 tries left") {
		t.Errorf("wrong code: got %v, want %s with 4 tries left", err, lethe.EFORBIDDEN)
	}
	v, err := e.svc.Verify(ctx, "default", r.ID, code)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != lethe.RequestApproved || v.VerifiedAt == nil || v.ApprovedBy != "policy" {
		t.Errorf("verified access: got %+v, want approved by policy", v)
	}
	if _, err := e.svc.Verify(ctx, "default", r.ID, code); lethe.ErrorCode(err) != lethe.ECONFLICT {
		t.Errorf("reused code: got %v, want %s", err, lethe.ECONFLICT)
	}
	if files := audittest.Files(t, e.audit); bytes.Contains(bytes.ToLower(files), []byte(known)) {
		t.Error("the audit log holds the person's address")
	}
}

// TestCodeCannotBeGuessed: after MaxAttempts wrong codes even the right
// one is refused; an expired code is refused; after MaxCodes codes no
// more are sent.
func TestCodeCannotBeGuessed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r, err := e.svc.Create(ctx, lethe.RequestSelf, "default", lethe.RequestAsk{Type: lethe.RequestErasure, Contact: known})
	if err != nil {
		t.Fatal(err)
	}
	code := e.lastCode(t, known)
	for i := range request.MaxAttempts {
		guess := []byte(code)
		guess[7] = '0' + (guess[7]-'0'+byte(i)+1)%10
		if _, err := e.svc.Verify(ctx, "default", r.ID, string(guess)); lethe.ErrorCode(err) != lethe.EFORBIDDEN {
			t.Fatalf("guess %d: got %v", i, err)
		}
	}
	if _, err := e.svc.Verify(ctx, "default", r.ID, code); lethe.ErrorCode(err) != lethe.EFORBIDDEN || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("the right code after %d wrong ones: got %v, want refused", request.MaxAttempts, err)
	}
	// A new code works, until it expires.
	if err := e.svc.ResendCode(ctx, "default", r.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(request.CodeTTL + time.Second)
	if _, err := e.svc.Verify(ctx, "default", r.ID, e.lastCode(t, known)); lethe.ErrorCode(err) != lethe.EFORBIDDEN || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired code: got %v", err)
	}
	if err := e.svc.ResendCode(ctx, "default", r.ID); err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Verify(ctx, "default", r.ID, e.lastCode(t, known))
	if err != nil {
		t.Fatal(err)
	}
	if v.State != lethe.RequestAwaitingApproval {
		t.Errorf("verified erasure: got %s, want awaiting_approval", v.State)
	}
	r2, _ := e.svc.Create(ctx, lethe.RequestSelf, "default", lethe.RequestAsk{Type: lethe.RequestAccess, Contact: known})
	for range request.MaxCodes - 1 {
		if err := e.svc.ResendCode(ctx, "default", r2.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.ResendCode(ctx, "default", r2.ID); lethe.ErrorCode(err) != lethe.ERATELIMIT {
		t.Errorf("code %d: got %v, want %s", request.MaxCodes+1, err, lethe.ERATELIMIT)
	}
}

// TestNoEnumeration: a request for an address Lethe holds nothing on is
// answered, and mailed, exactly like one for a known person.
func TestNoEnumeration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, err := e.svc.Create(ctx, lethe.RequestSelf, "default", lethe.RequestAsk{Type: lethe.RequestAccess, Contact: known})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.Create(ctx, lethe.RequestSelf, "default", lethe.RequestAsk{Type: lethe.RequestAccess, Contact: unknown})
	if err != nil {
		t.Fatal(err)
	}
	if a.State != b.State || a.Channel != b.Channel || !a.DueAt.Equal(b.DueAt) || b.SubjectID != "" {
		t.Errorf("known %+v, unknown %+v", a, b)
	}
	names, _ := e.outbox.List()
	if len(names) != 2 {
		t.Fatalf("got %d messages, want 2", len(names))
	}
	var texts []string
	for _, n := range names {
		m, _ := mail.ReadMessage(n)
		texts = append(texts, m.Subject+"\n"+codeRE.ReplaceAllString(strings.NewReplacer(a.ID, "REQ", b.ID, "REQ").Replace(m.Text), "CODE"))
	}
	if texts[0] != texts[1] {
		t.Errorf("the messages differ:\n%s\n---\n%s", texts[0], texts[1])
	}
	// The person who is unknown verifies just the same.
	if _, err := e.svc.Verify(ctx, "default", b.ID, e.lastCode(t, unknown)); err != nil {
		t.Errorf("unknown person's code: %v", err)
	}
}

func TestStaffWorkflow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dpo := lethe.Actor{KeyID: "key_dpo", Role: lethe.RoleDPO}
	r, err := e.svc.Create(ctx, dpo, "default", lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: adaID, Contact: known, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != lethe.RequestAwaitingApproval || r.Channel != "staff" {
		t.Fatalf("got %+v", r)
	}
	if names, _ := e.outbox.List(); len(names) != 0 {
		t.Errorf("staff verified the person, yet %d codes were sent", len(names))
	}
	dup, err := e.svc.Create(ctx, dpo, "default", lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: adaID, Contact: known, Verified: true})
	if err != nil || dup.ID != r.ID {
		t.Errorf("duplicate: got %v, %v, want merged into %s", dup, err, r.ID)
	}
	if r, err = e.svc.Approve(ctx, dpo, "default", r.ID); err != nil || r.State != lethe.RequestApproved || r.ApprovedBy != "key_dpo" {
		t.Fatalf("approve: %+v, %v", r, err)
	}
	if _, err := e.svc.Extend(ctx, dpo, "default", r.ID, r.ReceivedAt.AddDate(0, 2, 0), ""); lethe.ErrorCode(err) != lethe.EINVALID {
		t.Errorf("extend without a reason: got %v", err)
	}
	if _, err := e.svc.Extend(ctx, dpo, "default", r.ID, r.ReceivedAt.AddDate(0, 3, 1), "many systems"); lethe.ErrorCode(err) != lethe.EINVALID {
		t.Errorf("extend past three months: got %v", err)
	}
	if r, err = e.svc.Extend(ctx, dpo, "default", r.ID, r.ReceivedAt.AddDate(0, 3, 0), "fourteen systems, two of them manual"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(40 * 24 * time.Hour)
	late, _ := e.svc.Overdue(ctx, "default")
	soon, _ := e.svc.DueSoon(ctx, "default", 60*24*time.Hour)
	if len(late) != 0 || len(soon) != 1 {
		t.Errorf("after the extension: %d overdue, %d due soon, want 0 and 1", len(late), len(soon))
	}
	if _, err := e.svc.Close(ctx, dpo, "default", r.ID, lethe.RequestRejected, ""); lethe.ErrorCode(err) != lethe.EINVALID {
		t.Errorf("reject without a reason: got %v", err)
	}
	if _, err := e.svc.Close(ctx, dpo, "default", r.ID, lethe.RequestCancelled, "the person withdrew it by phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Approve(ctx, dpo, "default", r.ID); lethe.ErrorCode(err) != lethe.ECONFLICT {
		t.Errorf("approve a cancelled request: got %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, in := range map[string]lethe.RequestAsk{
		"unknown type":                 {Type: "forget", Contact: known},
		"no contact":                   {Type: lethe.RequestAccess},
		"display name":                 {Type: lethe.RequestAccess, Contact: "Ada <" + known + ">"},
		"objection without a purpose":  {Type: lethe.RequestObjection, Contact: known},
		"rectification without values": {Type: lethe.RequestRectification, Contact: known},
		"self names a subject":         {Type: lethe.RequestAccess, Contact: known, SubjectID: adaID},
		"self verifies itself":         {Type: lethe.RequestAccess, Contact: known, Verified: true},
	} {
		_, err := e.svc.Create(ctx, lethe.RequestSelf, "default", in)
		if lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("%s: got %v, want %s", name, err, lethe.EINVALID)
		}
		if err != nil && strings.Contains(strings.ToLower(err.Error()), known) {
			t.Errorf("%s: the error repeats the address", name)
		}
	}
	if names, _ := e.outbox.List(); len(names) != 0 {
		t.Errorf("bad requests sent %d messages", len(names))
	}
}
