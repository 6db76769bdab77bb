package request_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/jobs"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
)

// sixWorld is a deployment whose data map is the sample shop's six
// systems, each reached by its real connector: the shop's database in
// PostgreSQL, MariaDB and SQLite, Redis, the uploads directory and the
// mail provider over signed HTTPS, which erases at once but acknowledges
// through Lethe's callback. A real vault, audit log and consent ledger,
// the mail outbox, and the job queue running.
type sixWorld struct {
	*deployment
	sys      *connectortest.Systems
	subjects map[int64]string // customer ID → subject ID
}

// newSixWorld builds the six systems with n customers, each a subject of
// the vault linked from the shop's databases, and passes them through
// edit, if any, before anything runs. It skips t, or fails it under
// LETHE_REQUIRE_SERVICES=1, when PostgreSQL, MariaDB or Redis is
// unreachable.
func newSixWorld(t testing.TB, n int, edit func(*connectortest.Systems)) *sixWorld {
	t.Helper()
	ctx := context.Background()
	w := &sixWorld{sys: connectortest.NewSystems(t, n, true), subjects: map[int64]string{}}
	if edit != nil {
		edit(w.sys)
	}
	m := w.sys.Manifest
	w.deployment = newDeployment(t, m.Purposes)
	for _, c := range w.sys.Customers {
		s, err := w.vault.CreateSubject(ctx, lethe.Actor{KeyID: "key_shop", Role: lethe.RoleService}, lethe.NewSubject{Identifiers: shop.Identifiers(c)})
		if err != nil {
			t.Fatal(err)
		}
		w.subjects[c.ID] = s.ID
		w.sys.Link(t, c.ID, s.ID)
	}
	var described []string
	for _, s := range m.Systems {
		described = append(described, s.Name+": "+s.Description)
	}
	tp := w.sys.ThirdParty
	rc := w.runnerConfig(request.RunnerConfig{Systems: w.sys.Names(), Open: w.sys.Open,
		Summary: request.Summary{Organisation: m.Organisation.Name, Contact: m.DPO.Email, Purposes: m.Purposes, Systems: described},
		Callback: func(system, signature string, body []byte) (string, string, int64, error) {
			if system != tp.System.Name {
				return "", "", 0, lethe.Errorf(lethe.ENOTFOUND, "no system of that name takes callbacks")
			}
			return webhook.ReadCallback(tp.System, signature, body, time.Now())
		},
	})
	// As cmd/lethe runs it (32 workers, a poll every 100 ms), with quick
	// retries: a system that is down is tried again within a second.
	w.start(t, rc, jobs.Config{Queues: map[string]int{jobs.DefaultQueue: 32}, MaxAttempts: 10}, m.Organisation.Name)
	return w
}

// mailFor returns the first match of re in the newest message about
// request id (its ID is in the text), or "" if there is none.
func (w *sixWorld) mailFor(t testing.TB, id string, re *regexp.Regexp) string {
	t.Helper()
	names, err := w.outbox.List()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		m, err := mail.ReadMessage(names[i])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Text, id) {
			continue
		}
		if s := re.FindStringSubmatch(m.Text); s != nil {
			return s[1]
		}
	}
	return ""
}

// self makes a request as the person does: created through the
// self-service path with their address, verified with the code read from
// the mail, and approved by the DPO where policy asks (erasure).
func (w *sixWorld) self(t testing.TB, c shop.Customer, ask lethe.RequestAsk) *lethe.Request {
	t.Helper()
	ctx := context.Background()
	ask.Contact = c.Email
	r, err := w.svc.Create(ctx, lethe.RequestSelf, lethe.DefaultTenant, ask)
	if err != nil {
		t.Fatalf("create %s for customer %d: %v", ask.Type, c.ID, err)
	}
	if r.State != lethe.RequestReceived || r.Channel != "self" || r.SubjectID != w.subjects[c.ID] {
		t.Fatalf("created %s for customer %d: state %s, channel %s, subject %s; want received, self, %s", ask.Type, c.ID, r.State, r.Channel, r.SubjectID, w.subjects[c.ID])
	}
	code := w.mailFor(t, r.ID, codeRE)
	if code == "" {
		t.Fatalf("request %s: no code was mailed", r.ID)
	}
	id := r.ID
	if r, err = w.svc.Verify(ctx, lethe.DefaultTenant, id, code); err != nil {
		t.Fatalf("verify request %s: %v", id, err)
	}
	if ask.Type != lethe.RequestErasure {
		if r.State != lethe.RequestApproved && r.State != lethe.RequestRunning {
			t.Fatalf("request %s verified: got %s, want approved by policy", r.ID, r.State)
		}
		return r
	}
	if r.State != lethe.RequestAwaitingApproval {
		t.Fatalf("erasure %s verified: got %s, want awaiting_approval", r.ID, r.State)
	}
	if r, err = w.svc.Approve(ctx, dpo, lethe.DefaultTenant, id); err != nil {
		t.Fatalf("approve request %s: %v", id, err)
	}
	return r
}

// waitUntil returns the request and its tasks once ok holds of them,
// polling every 5 ms.
func (w *sixWorld) waitUntil(t testing.TB, id, what string, ok func(*lethe.Request, []lethe.RequestTask) bool) (*lethe.Request, []lethe.RequestTask) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := w.store.Request(ctx, lethe.DefaultTenant, id)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := w.store.Tasks(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r, tasks) {
			return r, tasks
		}
		if time.Now().After(deadline) {
			var states []string
			for _, task := range tasks {
				states = append(states, task.System+"="+string(task.State))
			}
			t.Fatalf("request %s is %s (tasks %s), still not %s", id, r.State, strings.Join(states, " "), what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed returns the request once it is closed.
func (w *sixWorld) waitClosed(t testing.TB, id string) (*lethe.Request, []lethe.RequestTask) {
	t.Helper()
	return w.waitUntil(t, id, "closed", func(r *lethe.Request, _ []lethe.RequestTask) bool { return !r.State.Open() })
}

// acknowledge waits until the mail provider's task waits for its
// acknowledgement, then posts the provider's signed callback to the
// runner, as the provider would to POST /v1/callbacks/mailer.
func (w *sixWorld) acknowledge(t testing.TB, id string) {
	t.Helper()
	mailer := w.sys.ThirdParty.System.Name
	w.waitUntil(t, id, "waiting for "+mailer, func(_ *lethe.Request, tasks []lethe.RequestTask) bool {
		return slices.ContainsFunc(tasks, func(task lethe.RequestTask) bool { return task.System == mailer && task.State == lethe.TaskWaiting })
	})
	sig, body, ok := w.sys.ThirdParty.Acknowledgement(id)
	if !ok {
		t.Fatalf("request %s: %s waits, but the third party accepted no erasure", id, mailer)
	}
	if err := w.runner.Callback(context.Background(), mailer, sig, body); err != nil {
		t.Fatalf("request %s: callback: %v", id, err)
	}
}

// pick returns the first customer not yet used that has what ok asks, and
// marks it used.
func pick(t testing.TB, cs []shop.Customer, used map[int64]bool, what string, ok func(shop.Customer) bool) shop.Customer {
	t.Helper()
	for _, c := range cs {
		if !used[c.ID] && ok(c) {
			used[c.ID] = true
			return c
		}
	}
	t.Fatalf("no customer left who is %s: seed more", what)
	return shop.Customer{}
}

// everywhere is a customer whom every system holds something of: an
// account, a session, uploads, the newsletter (so the third party), and a
// support ticket.
func everywhere(c shop.Customer) bool {
	return c.Newsletter && c.Avatar != "" && len(c.Tickets) > 0 && len(c.IPs) > 0
}

// TestSixSystemsEndToEnd runs one request of each type, made by the person
// through the self-service path (created with their address, verified
// with the mailed code, approved where policy asks), across the six
// sample systems in one deployment, and checks its outcome in each.
func TestSixSystemsEndToEnd(t *testing.T) {
	w := newSixWorld(t, 16, nil)
	ctx := context.Background()
	cs := w.sys.Customers
	used := map[int64]bool{}

	for _, typ := range []lethe.RequestType{lethe.RequestAccess, lethe.RequestPortability} {
		t.Run(string(typ), func(t *testing.T) {
			c := pick(t, cs, used, "held in every system", everywhere)
			r := w.self(t, c, lethe.RequestAsk{Type: typ})
			done, tasks := w.waitClosed(t, r.ID)
			if done.State != lethe.RequestCompleted {
				t.Fatalf("got %s, want completed", done.State)
			}
			checkTasksDone(t, w.sys.Names(), tasks)
			link := w.mailFor(t, r.ID, regexp.MustCompile(`/v1/self/downloads/(`+regexp.QuoteMeta(r.ID)+`\.\S+)`))
			if link == "" {
				t.Fatal("no download link was mailed to the person")
			}
			zipped, err := w.svc.Download(ctx, link)
			if err != nil {
				t.Fatal(err)
			}
			entries := unzip(t, zipped)
			for _, s := range w.sys.Names() {
				if _, ok := entries["data/"+s+".json"]; !ok {
					t.Errorf("the archive has no part from %s", s)
				}
			}
			text := archiveText(entries)
			for i, v := range c.PersonalValues() {
				if !strings.Contains(text, v) {
					t.Errorf("the archive lacks value #%d of customer %d", i, c.ID)
				}
			}
			for _, o := range cs {
				if o.ID == c.ID {
					continue
				}
				for i, v := range o.PersonalValues() {
					if strings.Contains(text, v) {
						t.Errorf("the archive of customer %d holds value #%d of customer %d", c.ID, i, o.ID)
					}
				}
			}
		})
	}

	t.Run("rectification", func(t *testing.T) {
		c := pick(t, cs, used, "a subscriber (held by the third party)", func(c shop.Customer) bool { return c.Newsletter })
		values := map[string]string{
			"user.name":                 fmt.Sprintf("Rectified Person-%04d", c.ID),
			"user.contact.phone_number": fmt.Sprintf("+44 7700 8%05d", c.ID),
		}
		old := map[string]string{"user.name": c.FullName, "user.contact.phone_number": c.Phone}
		before := w.mappedCounts(t, values, old)
		r := w.self(t, c, lethe.RequestAsk{Type: lethe.RequestRectification, Values: values})
		done, tasks := w.waitClosed(t, r.ID)
		if done.State != lethe.RequestCompleted {
			t.Fatalf("got %s, want completed", done.State)
		}
		checkTasksDone(t, w.sys.Names(), tasks)
		afterNew := w.mappedCounts(t, values, values)
		afterOld := w.mappedCounts(t, values, old)
		checked := map[string]bool{}
		for field, n := range before {
			checked[strings.SplitN(field, "/", 2)[0]] = true
			if n == 0 {
				t.Errorf("customer %d: %s held none of their seeded value before", c.ID, field)
			}
			if afterNew[field] != n || afterOld[field] != 0 {
				t.Errorf("customer %d: %s holds the new value %d times and the old %d times, want %d and 0", c.ID, field, afterNew[field], afterOld[field], n)
			}
		}
		for _, s := range append(w.dbNames(), w.sys.ThirdParty.System.Name) {
			if !checked[s] {
				t.Errorf("system %s maps a rectified category, but nothing of it was checked", s)
			}
		}
	})

	t.Run("restriction and objection", func(t *testing.T) {
		a := pick(t, cs, used, "anyone", func(shop.Customer) bool { return true })
		b := pick(t, cs, used, "anyone", func(shop.Customer) bool { return true })
		for _, req := range []struct {
			c   shop.Customer
			ask lethe.RequestAsk
		}{
			{a, lethe.RequestAsk{Type: lethe.RequestRestriction, Reason: "accuracy_contested"}},
			{b, lethe.RequestAsk{Type: lethe.RequestObjection, Purpose: "analytics"}},
		} {
			r := w.self(t, req.c, req.ask)
			done, tasks := w.waitClosed(t, r.ID)
			if done.State != lethe.RequestCompleted {
				t.Fatalf("%s: got %s, want completed", req.ask.Type, done.State)
			}
			checkTasksDone(t, w.sys.Names(), tasks)
		}
		for _, tc := range []struct {
			c       shop.Customer
			purpose string
			want    string
		}{
			{a, "orders", lethe.DecisionRestricted},
			{a, "analytics", lethe.DecisionRestricted},
			{b, "analytics", lethe.DecisionObjected},
			{b, "orders", lethe.DecisionLegalBasis},
		} {
			d, err := w.consent.Check(ctx, lethe.DefaultTenant, w.subjects[tc.c.ID], tc.purpose, 0)
			if err != nil {
				t.Fatal(err)
			}
			if d.Reason != tc.want {
				t.Errorf("customer %d, %s: got %s, want %s", tc.c.ID, tc.purpose, d.Reason, tc.want)
			}
		}
		// Every database marks the restricted customer, and only them
		// (the objection was to analytics, which marks nothing).
		for _, d := range w.sys.Databases {
			for _, c := range []shop.Customer{a, b} {
				var v any
				if err := d.DB.QueryRow(fmt.Sprintf("SELECT processing_restricted FROM customers WHERE id = %d", c.ID)).Scan(&v); err != nil {
					t.Fatal(err)
				}
				if got, want := fmt.Sprint(v) == "1" || fmt.Sprint(v) == "true", c.ID == a.ID; got != want {
					t.Errorf("%s: customer %d processing_restricted %v, want %v", d.System.Name, c.ID, got, want)
				}
			}
		}
	})

	t.Run("erasure", func(t *testing.T) {
		c := pick(t, cs, used, "held in every system", everywhere)
		before := w.sys.Dump(t)
		r := w.self(t, c, lethe.RequestAsk{Type: lethe.RequestErasure})
		mailer := w.sys.ThirdParty.System.Name
		forged, _ := json.Marshal(webhook.Callback{RequestID: r.ID, Action: webhook.ActionErase, Status: webhook.StatusDone})
		if err := w.runner.Callback(ctx, mailer, webhook.Sign([]byte("not the secret"), forged, time.Now()), forged); lethe.ErrorCode(err) != lethe.EUNAUTHORIZED {
			t.Errorf("a callback signed with another secret: got %v, want %s", err, lethe.EUNAUTHORIZED)
		}
		w.acknowledge(t, r.ID)
		done, _ := w.waitClosed(t, r.ID)
		if done.State != lethe.RequestCompleted {
			t.Fatalf("got %s, want completed", done.State)
		}
		rc := w.checkReceipt(t, done, c)
		for _, s := range rc.Systems {
			if s.Report == nil || s.Report.Total() == 0 {
				t.Errorf("receipt: %s reports nothing done", s.System)
			}
		}
		if i := slices.IndexFunc(rc.Systems, func(s request.ReceiptSystem) bool { return s.System == mailer }); i < 0 || rc.Systems[i].Report == nil ||
			!slices.ContainsFunc(rc.Systems[i].Report.Steps, func(st connector.Step) bool { return st.Action == "acknowledged" && st.Count == 1 }) {
			t.Errorf("receipt: %s lacks the third party's acknowledgement of 1 record", mailer)
		}
		w.checkErased(t, c, before)
		if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); lethe.ErrorCode(err) != lethe.EGONE {
			t.Errorf("the subject after erasure: got %v, want %s", err, lethe.EGONE)
		}
	})
}

// checkTasksDone checks that the request ran in every system.
func checkTasksDone(t testing.TB, systems []string, tasks []lethe.RequestTask) {
	t.Helper()
	var got []string
	for _, task := range tasks {
		if task.State == lethe.TaskDone {
			got = append(got, task.System)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(systems))
	if !slices.Equal(got, want) {
		t.Errorf("systems done: got %v, want %v", got, want)
	}
}

// checkReceipt checks an erasure's receipt: signed, every system done, no
// personal value of c in it.
func (w *sixWorld) checkReceipt(t testing.TB, done *lethe.Request, c shop.Customer) request.Receipt {
	t.Helper()
	var signed request.SignedReceipt
	if err := json.Unmarshal(done.Receipt, &signed); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	sig, err := base64.StdEncoding.DecodeString(signed.Signature)
	if err != nil || !ed25519.Verify(w.pub, signed.Receipt, sig) {
		t.Error("the receipt's signature does not verify")
	}
	var rc request.Receipt
	if err := json.Unmarshal(signed.Receipt, &rc); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	if rc.SubjectID != w.subjects[c.ID] || rc.KeyDestroyedAt == nil || rc.Type != string(lethe.RequestErasure) {
		t.Errorf("receipt: subject %s, key destroyed %v, type %s; want %s, a time, erasure", rc.SubjectID, rc.KeyDestroyedAt, rc.Type, w.subjects[c.ID])
	}
	var got []string
	for _, s := range rc.Systems {
		if s.State == lethe.TaskDone {
			got = append(got, s.System)
		}
	}
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(w.sys.Names())); !slices.Equal(got, want) {
		t.Errorf("receipt: systems done %v, want %v", got, want)
	}
	for i, v := range c.PersonalValues() {
		if strings.Contains(string(done.Receipt), v) {
			t.Errorf("the receipt holds value #%d of customer %d", i, c.ID)
		}
	}
	return rc
}

// checkErased searches every system for c's seeded values, and checks that
// nobody else's data changed since before: an item holding another
// customer's values and none of c's is as it was, and every other
// customer's value is found as often as before. The invoices the law
// keeps are still there, pseudonymised.
func (w *sixWorld) checkErased(t testing.TB, c shop.Customer, before map[string]map[string]string) {
	t.Helper()
	after := w.sys.Dump(t)
	mine := c.PersonalValues()
	holds := func(text string, values []string) bool {
		return slices.ContainsFunc(values, func(v string) bool { return strings.Contains(text, v) })
	}
	for _, s := range slices.Sorted(maps.Keys(after)) {
		for item, text := range after[s] {
			for i, v := range mine {
				if strings.Contains(text, v) {
					t.Errorf("value #%d of customer %d survived in %s, item %s", i, c.ID, s, item)
				}
			}
		}
	}
	for _, o := range w.sys.Customers {
		if o.ID == c.ID {
			continue
		}
		theirs := o.PersonalValues()
		for s, items := range before {
			for item, text := range items {
				if holds(text, theirs) && !holds(text, mine) && after[s][item] != text {
					t.Errorf("the erasure of customer %d changed %s, item %s, of customer %d", c.ID, s, item, o.ID)
				}
			}
		}
		for i, v := range theirs {
			if b, a := occurrences(before, v), occurrences(after, v); a != b {
				t.Errorf("value #%d of customer %d: found %d times after the erasure of customer %d, %d before", i, o.ID, a, c.ID, b)
			}
		}
	}
	for _, d := range w.sys.Databases {
		for _, o := range c.Orders {
			inv := after[d.System.Name]["invoices/"+strconv.FormatInt(o.Invoice.ID, 10)]
			if !strings.Contains(inv, o.Invoice.Number) || !strings.Contains(inv, "billing_name=pse_") {
				t.Errorf("%s: invoice %d of customer %d is not kept pseudonymised", d.System.Name, o.Invoice.ID, c.ID)
			}
		}
	}
}

func occurrences(dump map[string]map[string]string, v string) int {
	n := 0
	for _, items := range dump {
		for _, text := range items {
			n += strings.Count(text, v)
		}
	}
	return n
}

// dbNames returns the names of the shop's databases.
func (w *sixWorld) dbNames() []string {
	var out []string
	for _, d := range w.sys.Databases {
		out = append(out, d.System.Name)
	}
	return out
}

// mappedCounts counts, for every place the data map gives one of the
// categories of values (a column of a database, the third party's
// records), how many times it holds the value in want of that category:
// "system/table.column" → rows.
func (w *sixWorld) mappedCounts(t testing.TB, values, want map[string]string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, d := range w.sys.Databases {
		for _, table := range d.System.Tables {
			for _, col := range table.Columns {
				v, ok := want[col.Category]
				if _, mapped := values[col.Category]; !ok || !mapped {
					continue
				}
				q := "SELECT COUNT(*) FROM " + table.Name + " WHERE " + col.Name + " = ?"
				if d.Kind == datamap.KindPostgres {
					q = strings.Replace(q, "?", "$1", 1)
				}
				var n int
				if err := d.DB.QueryRow(q, v).Scan(&n); err != nil {
					t.Fatalf("count %s.%s in %s: %v", table.Name, col.Name, d.System.Name, err)
				}
				out[d.System.Name+"/"+table.Name+"."+col.Name] = n
			}
		}
	}
	tp := w.sys.ThirdParty
	held := tp.Dump()
	for _, cat := range tp.System.Webhook.Categories {
		if _, mapped := values[cat]; !mapped || cat != "user.name" { // the provider keeps names, and emails it finds people by
			continue
		}
		n := 0
		for _, rec := range held {
			if strings.HasSuffix(rec, ";"+want[cat]) {
				n++
			}
		}
		out[tp.System.Name+"/contacts.name"] = n
	}
	return out
}

// unzip returns a zip's entries by name.
func unzip(t testing.TB, zipped []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatalf("the archive is no zip: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

// archiveText is every entry of an archive as text, and the strings of its
// JSON entries decoded (JSON escapes some characters).
func archiveText(entries map[string][]byte) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for name, data := range entries {
		b.Write(data)
		b.WriteByte('\n')
		var v any
		if strings.HasSuffix(name, ".json") && json.Unmarshal(data, &v) == nil {
			walk(v)
		}
	}
	return b.String()
}

// cutter is a TCP proxy to a MariaDB server that the test can cut off:
// while cut, it drops the connections it carries and closes new ones at
// once, as a server that went away does. Armed, it cuts itself off at the
// worst moment: once the server has committed a transaction that wrote,
// and before its answer reaches the client.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	armed  bool
	conns  map[net.Conn]bool
}

func newCutter(t testing.TB, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go c.carry(in)
		}
	}()
	t.Cleanup(func() { ln.Close(); c.set(true) })
	return c
}

// carry connects in to the server and copies both ways until either side
// closes or the cutter cuts them.
func (c *cutter) carry(in net.Conn) {
	out, err := net.Dial("tcp", c.target)
	if err != nil {
		in.Close()
		return
	}
	c.mu.Lock()
	if c.cut {
		c.mu.Unlock()
		in.Close()
		out.Close()
		return
	}
	c.conns[in], c.conns[out] = true, true
	c.mu.Unlock()
	// The client waits for each answer before its next command, so the
	// first answer after a COMMIT is the COMMIT's.
	var wrote, committing atomic.Bool
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 64<<10)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				if c.isArmed() {
					chunk := buf[:n]
					if bytes.Contains(chunk, []byte("UPDATE ")) || bytes.Contains(chunk, []byte("DELETE ")) {
						wrote.Store(true)
					}
					if wrote.Load() && bytes.Contains(chunk, []byte("COMMIT")) {
						committing.Store(true)
					}
				}
				if _, err := out.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 64<<10)
		for {
			n, err := out.Read(buf)
			if n > 0 && committing.Load() {
				c.set(true) // the server committed; its answer is lost with the connection
				return
			}
			if n > 0 {
				if _, err := in.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	<-done
	in.Close()
	out.Close()
	c.mu.Lock()
	delete(c.conns, in)
	delete(c.conns, out)
	c.mu.Unlock()
}

// set cuts the server off (true) or lets connections through again.
func (c *cutter) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut, c.armed = cut, false
	if cut {
		for conn := range c.conns {
			conn.Close()
		}
	}
}

// arm makes the cutter cut itself off after the next write transaction
// commits, keeping the answer.
func (c *cutter) arm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = true
}

func (c *cutter) isArmed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// TestSixSystemsUnreachable: MariaDB goes away while an erasure is running
// across the six systems, either before the erasure reaches it or right
// after it committed there, its answer lost. The request is partially
// completed, MariaDB pending, the other five done, and the subject's key
// kept; once MariaDB is back, the request completes, the five are not run
// again, MariaDB's report is what was erased (resumed, where an earlier
// attempt did it), and no system has anything left to erase.
func TestSixSystemsUnreachable(t *testing.T) {
	var cut *cutter
	w := newSixWorld(t, 16, func(sys *connectortest.Systems) {
		// MariaDB is reached through a proxy the test can cut.
		cfg, err := mysqldrv.ParseDSN(sys.Databases[1].DSN)
		if err != nil {
			t.Fatal("the MariaDB DSN does not parse")
		}
		cut = newCutter(t, cfg.Addr)
		cfg.Addr = cut.ln.Addr().String()
		sys.Databases[1].System.Connection = connectortest.SecretFile(t, cfg.FormatDSN())
	})
	ctx := context.Background()
	cs := w.sys.Customers
	used := map[int64]bool{}
	maria := w.sys.Databases[1]

	// A first request opens every system; their connections stay open.
	warm := pick(t, cs, used, "anyone", func(shop.Customer) bool { return true })
	if r, _ := w.waitClosed(t, w.self(t, warm, lethe.RequestAsk{Type: lethe.RequestAccess}).ID); r.State != lethe.RequestCompleted {
		t.Fatalf("access before the fault: got %s", r.State)
	}

	for _, tc := range []struct {
		name string
		// fault cuts MariaDB off, or arms the cut, before the request runs.
		fault func()
		// committed says MariaDB erased the customer before it went away.
		committed bool
	}{
		{"before it is reached", func() { cut.set(true) }, false},
		{"after it committed", cut.arm, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pick(t, cs, used, "held in every system", everywhere)
			k, err := w.vault.PseudonymKey(ctx, lethe.DefaultTenant, w.subjects[c.ID])
			if err != nil {
				t.Fatal(err)
			}
			key := k[:]
			before := w.sys.Dump(t)
			r, err := w.svc.Create(ctx, lethe.RequestSelf, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, Contact: c.Email})
			if err != nil {
				t.Fatal(err)
			}
			v, err := w.svc.Verify(ctx, lethe.DefaultTenant, r.ID, w.mailFor(t, r.ID, codeRE))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if v.State != lethe.RequestAwaitingApproval {
				t.Fatalf("verified: got %s, want awaiting_approval", v.State)
			}
			tc.fault()
			if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
				t.Fatal(err)
			}
			w.acknowledge(t, r.ID)
			partial, tasks := w.waitUntil(t, r.ID, "partially completed with five systems done", func(r *lethe.Request, tasks []lethe.RequestTask) bool {
				n := 0
				for _, task := range tasks {
					if task.State == lethe.TaskDone {
						n++
					}
				}
				return r.State == lethe.RequestPartial && n == 5
			})
			reports := map[string]string{}
			for _, task := range tasks {
				if task.System != maria.System.Name {
					reports[task.System] = string(task.Report)
					continue
				}
				if task.State == lethe.TaskDone || task.Error == "" {
					t.Errorf("%s while cut off: got %s, error %q; want pending with the error", task.System, task.State, task.Error)
				}
				for i, v := range c.PersonalValues() {
					if strings.Contains(task.Error, v) {
						t.Errorf("%s's error holds value #%d of customer %d", task.System, i, c.ID)
					}
				}
			}
			if len(partial.Receipt) != 0 {
				t.Error("a partially completed erasure has a receipt")
			}
			if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); err != nil {
				t.Errorf("the subject while MariaDB is not done: %v, want kept", err)
			}
			row := maria.Dump(t)["customers/"+strconv.FormatInt(c.ID, 10)]
			if erased := !strings.Contains(row, c.Email); erased != tc.committed {
				t.Errorf("customer %d's row in MariaDB while cut off: erased %v, want %v", c.ID, erased, tc.committed)
			}

			cut.set(false)
			// Its job may still be retrying; if it gave up, staff retry.
			if cur, _ := w.store.Request(ctx, lethe.DefaultTenant, r.ID); cur.State == lethe.RequestPartial {
				tasks, _ := w.store.Tasks(ctx, r.ID)
				if slices.ContainsFunc(tasks, func(task lethe.RequestTask) bool { return task.State == lethe.TaskFailed }) {
					if _, err := w.svc.Retry(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil && lethe.ErrorCode(err) != lethe.ECONFLICT {
						t.Fatal(err)
					}
				}
			}
			done, _ := w.waitUntil(t, r.ID, "completed", func(r *lethe.Request, _ []lethe.RequestTask) bool { return r.State == lethe.RequestCompleted })
			rc := w.checkReceipt(t, done, c)
			for _, s := range rc.Systems {
				if s.System != maria.System.Name {
					if b, _ := json.Marshal(s.Report); string(b) != reports[s.System] {
						t.Errorf("receipt: %s's report changed after it was done: it ran again", s.System)
					}
					continue
				}
				if s.Report == nil || s.Report.Total() == 0 {
					t.Fatalf("receipt: %s reports nothing erased", s.System)
				}
				resumed := slices.ContainsFunc(s.Report.Steps, func(st connector.Step) bool { return st.Action == "resumed" })
				if resumed != tc.committed {
					t.Errorf("receipt: %s's report says resumed %v, want %v", s.System, resumed, tc.committed)
				}
			}
			w.checkErased(t, c, before)
			if n := w.sys.ThirdParty.Erased(c.Email); n != 1 {
				t.Errorf("the third party erased customer %d %d times, want 1", c.ID, n)
			}
			// Asked again, with the subject's own pseudonym key, no system
			// has anything left to do.
			s := connector.Subject{ID: w.subjects[c.ID], Identifiers: shop.Identifiers(c), PseudonymKey: key, Now: time.Now(), Tenant: lethe.DefaultTenant}
			for _, name := range w.sys.Names() {
				conn, err := w.sys.Open(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := conn.(connector.Eraser).Erase(ctx, s)
				conn.Close()
				if err != nil {
					t.Errorf("%s: second erase: %v", name, err)
				} else if rep.Total() != 0 || rep.Pending {
					t.Errorf("%s: second erase did %d (pending %v), want 0", name, rep.Total(), rep.Pending)
				}
			}
			if _, err := w.vault.ReadSubject(ctx, dpo, lethe.DefaultTenant, w.subjects[c.ID], lethe.ReadOptions{}); lethe.ErrorCode(err) != lethe.EGONE {
				t.Errorf("the subject after erasure: got %v, want %s", err, lethe.EGONE)
			}
		})
	}
}

// BenchmarkVerifiedErasureSixSystems: one erasure at a time across the six
// sample systems, end to end as the person and the DPO make it: created
// through the self-service path, the code read from the mail and
// verified, approved, run on the job queue (the third party erases and
// answers 202; its signed acknowledgement is posted to the callback as
// soon as its task waits), the subject's key destroyed and the receipt
// signed. Every customer erased is a newsletter subscriber, so every
// request waits for the third party. Reports the median and the 95th
// percentile per request. Run with -benchtime 50x or fewer.
func BenchmarkVerifiedErasureSixSystems(b *testing.B) {
	const n = 102
	w := newSixWorld(b, n, nil)
	var subscribers []shop.Customer
	for _, c := range w.sys.Customers {
		if c.Newsletter {
			subscribers = append(subscribers, c)
		}
	}
	erase := func(c shop.Customer) {
		r := w.self(b, c, lethe.RequestAsk{Type: lethe.RequestErasure})
		w.acknowledge(b, r.ID)
		done, _ := w.waitClosed(b, r.ID)
		if done.State != lethe.RequestCompleted || len(done.Receipt) == 0 {
			b.Fatalf("request %s: got %s with a receipt of %d bytes", r.ID, done.State, len(done.Receipt))
		}
	}
	erase(subscribers[0]) // opens the systems, as a running Lethe has them
	var times []time.Duration
	i := 1
	for b.Loop() {
		if i >= len(subscribers) {
			b.Fatalf("only %d subscribers to erase: use -benchtime %dx or fewer", len(subscribers)-1, len(subscribers)-1)
		}
		start := time.Now()
		erase(subscribers[i])
		times = append(times, time.Since(start))
		i++
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(times[len(times)*95/100].Milliseconds()), "p95-ms")
}
