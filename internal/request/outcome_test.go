package request_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
)

// mailsTo returns the messages the outbox holds for to.
func (w *world) mailsTo(t *testing.T, to string) []mail.Message {
	t.Helper()
	names, err := w.outbox.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []mail.Message
	for _, n := range names {
		m, err := mail.ReadMessage(n)
		if err != nil {
			t.Fatal(err)
		}
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// subjectEvents returns the actions and resources of a subject's events in
// the audit log.
func (w *world) subjectEvents(t *testing.T, subject string) []lethe.AuditEvent {
	t.Helper()
	b, err := w.log.SubjectEvents(context.Background(), dpo, lethe.AuditQuery{Tenant: lethe.DefaultTenant, SubjectID: subject})
	if err != nil {
		t.Fatal(err)
	}
	var evs []lethe.AuditEvent
	for _, p := range b.Events {
		var ev lethe.AuditEvent
		if err := json.Unmarshal(p.Event, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestPersonIsTold: the person hears, at the verified address only, that
// their request was done, extended, rejected or cancelled, and why; and
// an erasure's receipt is chained into the audit log by its hash.
func TestPersonIsTold(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	c := w.cs[1]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Extend(ctx, dpo, lethe.DefaultTenant, r.ID, r.DueAt.AddDate(0, 1, 0), "fourteen systems, two of them manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
		t.Fatal(err)
	}
	done := w.wait(t, r.ID)
	if done.State != lethe.RequestCompleted {
		t.Fatalf("got %s", done.State)
	}
	got := w.mailsTo(t, c.Email)
	var texts []string
	for _, m := range got {
		texts = append(texts, m.Subject+"\n"+m.Text)
	}
	all := strings.Join(texts, "\n---\n")
	for _, want := range []string{"will take longer", "fourteen systems, two of them manual", "is done", "We erased your personal data", r.ID} {
		if !strings.Contains(all, want) {
			t.Errorf("the person was not told %q (%d messages)", want, len(got))
		}
	}
	sum := sha256.Sum256(done.Receipt)
	want := "request:" + r.ID + "/receipt/sha256:" + hex.EncodeToString(sum[:])
	found := false
	for _, ev := range w.subjectEvents(t, w.subjects[c.ID]) {
		found = found || ev.Action == "request.receipt" && ev.Resource == want
	}
	if !found {
		t.Error("the audit log does not hold the receipt's hash")
	}

	// Rejected, with the reason and the right to complain.
	d := w.cs[2]
	r2, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[d.ID], Contact: d.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Close(ctx, dpo, lethe.DefaultTenant, r2.ID, lethe.RequestRejected, "the invoices are kept for 10 years by law"); err != nil {
		t.Fatal(err)
	}
	msgs := w.mailsTo(t, d.Email)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "did not carry out") || !strings.Contains(msgs[0].Text, "10 years by law") || !strings.Contains(msgs[0].Text, "supervisory authority") {
		t.Errorf("the rejected person got %d messages, or not the reason", len(msgs))
	}

	// An unverified request is sent its code and nothing else: Lethe
	// writes to nobody who did not prove the address is theirs.
	e := w.cs[3]
	r3, err := w.svc.Create(ctx, lethe.RequestSelf, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, Contact: e.Email})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Close(ctx, dpo, lethe.DefaultTenant, r3.ID, lethe.RequestCancelled, "asked twice"); err != nil {
		t.Fatal(err)
	}
	if msgs := w.mailsTo(t, e.Email); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "your code is") {
		t.Errorf("the unverified address got %d messages, want only its code", len(msgs))
	}
}

// TestRectificationReachesVault: a correction is written into every
// system and, last, into the vault; a corrected identifier that is not
// valid is refused when the request is made.
func TestRectificationReachesVault(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[6]
	newEmail := fmt.Sprintf("rectified-%d@mail.example", c.ID)
	if _, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestRectification, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true,
		Values: map[string]string{"user.contact.email": "not an address"}}); lethe.ErrorCode(err) != lethe.EINVALID {
		t.Errorf("an invalid corrected address: got %v, want %s", err, lethe.EINVALID)
	}
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestRectification, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true,
		Values: map[string]string{"user.contact.email": newEmail}})
	if err != nil {
		t.Fatal(err)
	}
	if done := w.wait(t, r.ID); done.State != lethe.RequestCompleted {
		t.Fatalf("got %s", done.State)
	}
	v, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Identifiers[lethe.KindEmail] != newEmail {
		t.Errorf("customer %d: the vault's address was not corrected", c.ID)
	}
	var inShop string
	if err := w.shopDB.QueryRow("SELECT email FROM customers WHERE id = ?", c.ID).Scan(&inShop); err != nil {
		t.Fatal(err)
	}
	if inShop != newEmail {
		t.Errorf("customer %d: the shop's address was not corrected", c.ID)
	}
	if msgs := w.mailsTo(t, c.Email); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "We corrected your personal data") {
		t.Errorf("the person got %d messages, not the correction's", len(msgs))
	}

	// A corrected address another subject holds: the systems are
	// corrected, the vault keeps the old one, the request does not get
	// stuck, and the person is told.
	d := w.cs[7]
	taken := fmt.Sprintf("taken-%d@mail.example", d.ID) // a subject of the vault, no customer of the shop
	if _, err := w.vault.CreateSubject(ctx, lethe.Actor{KeyID: "key_shop", Role: lethe.RoleService}, lethe.NewSubject{Identifiers: map[string]string{lethe.KindEmail: taken}}); err != nil {
		t.Fatal(err)
	}
	r, err = w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestRectification, SubjectID: w.subjects[d.ID], Contact: d.Email, Verified: true,
		Values: map[string]string{"user.contact.email": taken}})
	if err != nil {
		t.Fatal(err)
	}
	if done := w.wait(t, r.ID); done.State != lethe.RequestCompleted {
		t.Fatalf("a correction to a held address: got %s", done.State)
	}
	if v, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[d.ID], lethe.ReadOptions{}); err != nil || v.Identifiers[lethe.KindEmail] != d.Email {
		t.Errorf("customer %d: the vault's address changed to one another subject holds (%v)", d.ID, err)
	}
	if msgs := w.mailsTo(t, d.Email); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "another account uses it") {
		t.Errorf("customer %d was not told the vault kept the old address", d.ID)
	}
}

// TestAcknowledgementReminderAndTimeout: a system that answered "later"
// is reminded, with the DPO mailed, and after the timeout its task fails
// so that the request shows as partially completed; a late answer still
// completes it.
func TestAcknowledgementReminderAndTimeout(t *testing.T) {
	w := newWorldWith(t, 8, 0, func(c *request.RunnerConfig) {
		// River moves scheduled jobs to run every few seconds: the
		// first reminder comes before the timeout, the next after.
		c.AckReminder, c.AckTimeout = 300*time.Millisecond, 6*time.Second
	}, "crm")
	ctx := context.Background()
	c := w.cs[0]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	var crm lethe.RequestTask
	for time.Now().Before(deadline) {
		tasks, err := w.store.Tasks(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.System == "crm" {
				crm = task
			}
		}
		if crm.State == lethe.TaskFailed {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if crm.State != lethe.TaskFailed || !strings.Contains(crm.Error, "did not acknowledge") {
		t.Fatalf("crm after the timeout: %s %q", crm.State, crm.Error)
	}
	if cur := w.wait(t, r.ID); cur.State != lethe.RequestPartial {
		t.Errorf("the request after the timeout: %s", cur.State)
	}
	reminders := 0
	for _, m := range w.mailsTo(t, "dpo@shop.example") {
		if strings.Contains(m.Subject, "waits for crm") && strings.Contains(m.Text, r.ID) {
			reminders++
		}
	}
	if reminders == 0 {
		t.Error("the DPO was not reminded")
	}
	if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); err != nil {
		t.Errorf("the subject's key went while a system had not acknowledged: %v", err)
	}
	if _, err := w.svc.Acknowledge(ctx, dpo, lethe.DefaultTenant, r.ID, "crm", 1, "done late"); err != nil {
		t.Fatal(err)
	}
	if done := w.waitFor(t, r.ID, func(s lethe.RequestState) bool { return s == lethe.RequestCompleted }); !strings.Contains(string(done.Receipt), "done late") {
		t.Error("the receipt lacks the late acknowledgement")
	}
}

// TestArchiveEncryptedToPassphrase: an access archive asked for with a
// passphrase is encrypted to it (age), and Lethe forgets the passphrase
// once the archive is built.
func TestArchiveEncryptedToPassphrase(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[5]
	const pass = "correct horse battery staple"
	for _, bad := range []lethe.RequestAsk{
		{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true, Passphrase: pass},
		{Type: lethe.RequestAccess, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true, Passphrase: "short"},
	} {
		if _, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, bad); lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("%s with passphrase of %d bytes: got %v, want %s", bad.Type, len(bad.Passphrase), err, lethe.EINVALID)
		}
	}
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestPortability, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true, Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	done := w.wait(t, r.ID)
	if done.State != lethe.RequestCompleted {
		t.Fatalf("got %s", done.State)
	}
	var link string
	for _, m := range w.mailsTo(t, c.Email) {
		if l := regexp.MustCompile(`/v1/self/downloads/(\S+)`).FindStringSubmatch(m.Text); l != nil {
			link = l[1]
			if !strings.Contains(m.Text, "age --decrypt") {
				t.Error("the mail does not say how to open the archive")
			}
		}
	}
	data, err := w.runner.Download(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(request.AgeHeader)) || bytes.Contains(data, []byte(c.Email)) {
		t.Fatal("the archive is not encrypted")
	}
	wrong, _ := age.NewScryptIdentity("not the passphrase at all")
	if _, err := age.Decrypt(bytes.NewReader(data), wrong); err == nil {
		t.Error("a wrong passphrase opened the archive")
	}
	id, _ := age.NewScryptIdentity(pass)
	plain, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(plain)
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) < 3 {
		t.Errorf("the archive holds %d files", len(zr.File))
	}
	stored, _ := w.store.Request(ctx, lethe.DefaultTenant, r.ID)
	details, err := w.unseal(stored.Details, request.AD("request-details", stored.Tenant, stored.ID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(details, []byte(pass)) {
		t.Error("the passphrase is kept after the archive was built")
	}
}

// TestUndownloadedArchiveExpires: an archive nobody downloaded is deleted,
// parts and all, by the sweep once its link has expired.
func TestUndownloadedArchiveExpires(t *testing.T) {
	var skew atomic.Int64
	w := newWorldWith(t, 4, 0, func(c *request.RunnerConfig) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	ctx := context.Background()
	c := w.cs[0]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	if done := w.wait(t, r.ID); done.State != lethe.RequestCompleted {
		t.Fatalf("got %s", done.State)
	}
	if _, err := w.runner.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Archive(ctx, r.ID, "archive.zip"); err != nil {
		t.Fatalf("the archive before its link expired: %v", err)
	}
	skew.Store(int64(request.DownloadTTL + time.Minute))
	if _, err := w.runner.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"archive.zip", "download", "part:shop", "part:uploads"} {
		if _, err := w.store.Archive(ctx, r.ID, name); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			t.Errorf("%s after the link expired: %v", name, err)
		}
	}
}

// TestDeliverRunAgain: a finish run again (a retry after a crash) mails
// the same link again while the archive waits, and does nothing once it
// was downloaded: the archive is built once.
func TestDeliverRunAgain(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[2]
	r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	done := w.wait(t, r.ID)
	systems := []string{"shop", "uploads"}
	links := func() []string {
		var out []string
		for _, m := range w.mailsTo(t, c.Email) {
			if l := regexp.MustCompile(`/v1/self/downloads/(\S+)`).FindStringSubmatch(m.Text); l != nil {
				out = append(out, l[1])
			}
		}
		return out
	}
	if err := w.runner.Deliver(ctx, done, systems); err != nil {
		t.Fatal(err)
	}
	got := links()
	if len(got) != 2 || got[0] != got[1] {
		t.Fatalf("run again before the download: %d links mailed, the same: %v", len(got), len(got) == 2 && got[0] == got[1])
	}
	if _, err := w.runner.Download(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.runner.Deliver(ctx, done, systems); err != nil {
		t.Fatal(err)
	}
	if n := len(links()); n != 2 {
		t.Errorf("run again after the download: %d links mailed, want still 2", n)
	}
	if _, err := w.store.Archive(ctx, r.ID, "archive.zip"); lethe.ErrorCode(err) != lethe.ENOTFOUND {
		t.Errorf("an archive was built again after the download: %v", err)
	}
}

// TestMergedAskSetsPassphrase: asked again with a passphrase while the
// first ask awaits its code, the one request's archive is encrypted to it.
func TestMergedAskSetsPassphrase(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cs[1]
	first, err := w.svc.Create(ctx, lethe.RequestSelf, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, Contact: c.Email})
	if err != nil {
		t.Fatal(err)
	}
	again, err := w.svc.Create(ctx, lethe.RequestSelf, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, Contact: c.Email, Passphrase: "chosen the second time"})
	if err != nil || again.ID != first.ID {
		t.Fatalf("the second ask was not merged: %v", err)
	}
	var code string
	for _, m := range w.mailsTo(t, c.Email) {
		if cm := regexp.MustCompile(`your code is: (\d{8})`).FindStringSubmatch(m.Text); cm != nil {
			code = cm[1]
		}
	}
	if _, err := w.svc.Verify(ctx, lethe.DefaultTenant, first.ID, code); err != nil {
		t.Fatal(err)
	}
	if done := w.wait(t, first.ID); done.State != lethe.RequestCompleted {
		t.Fatalf("got %s", done.State)
	}
	var link string
	for _, m := range w.mailsTo(t, c.Email) {
		if l := regexp.MustCompile(`/v1/self/downloads/(\S+)`).FindStringSubmatch(m.Text); l != nil {
			link = l[1]
		}
	}
	data, err := w.runner.Download(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := age.NewScryptIdentity("chosen the second time")
	if _, err := age.Decrypt(bytes.NewReader(data), id); err != nil {
		t.Errorf("the archive does not open with the passphrase of the merged ask: %v", err)
	}
}
