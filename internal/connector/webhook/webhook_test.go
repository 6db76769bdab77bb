package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

const (
	secret    = "s3cret-shared-with-the-third-party"
	bodyLeak  = "alice@example.com said something private"
	tolerance = 5 * time.Minute
)

// call is one request the third party accepted.
type call struct {
	Key     string
	Request Request
}

// thirdParty is a processor's endpoint: it checks signatures, records
// idempotency keys, and holds records of some subjects.
type thirdParty struct {
	secret []byte
	mu     sync.Mutex
	calls  []call
	hits   int
	held   map[string][]Record // by subject ID
}

func (p *thirdParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hits++
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := VerifySignature(p.secret, r.Header.Get(SignatureHeader), body, time.Now(), tolerance); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "method or type", http.StatusBadRequest)
		return
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "json", http.StatusBadRequest)
		return
	}
	p.calls = append(p.calls, call{Key: r.Header.Get("Idempotency-Key"), Request: req})
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch req.SubjectID {
	case "sub_async":
		reply(http.StatusAccepted, map[string]any{"status": "accepted"})
		return
	case "sub_fail":
		http.Error(w, bodyLeak, http.StatusInternalServerError)
		return
	case "sub_redirect":
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		return
	case "sub_huge":
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"status":"done","count":1,"pad":"`))
		w.Write([]byte(strings.Repeat("x", MaxResponse)))
		w.Write([]byte(`"}`))
		return
	case "sub_garbled":
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(bodyLeak))
		return
	case "sub_nocount":
		reply(http.StatusOK, map[string]any{"status": "done"})
		return
	}
	recs := p.held[req.SubjectID]
	switch {
	case req.Action == ActionExport:
		reply(http.StatusOK, map[string]any{"status": "done", "records": recs})
	case len(recs) == 0:
		reply(http.StatusOK, map[string]any{"status": "done", "held_data": false})
	case req.Action == ActionFind:
		reply(http.StatusOK, map[string]any{"status": "done", "count": len(recs)})
	case req.Action == ActionErase:
		delete(p.held, req.SubjectID)
		reply(http.StatusOK, map[string]any{"status": "done", "count": len(recs)})
	case req.Action == ActionRectify:
		reply(http.StatusOK, map[string]any{"status": "done", "count": len(recs)})
	default:
		http.Error(w, "action", http.StatusBadRequest)
	}
}

func (p *thirdParty) snapshot() (int, []call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits, slices.Clone(p.calls)
}

func newThirdParty(t *testing.T) (*thirdParty, *httptest.Server) {
	t.Helper()
	p := &thirdParty{secret: []byte(secret), held: map[string][]Record{
		"sub_alice": {
			{Location: "crm.contacts", Fields: map[string]any{"name": "Alice", "email": "alice@example.com"}},
			{Location: "crm.contacts", Fields: map[string]any{"name": "A. Liddell", "email": "al@example.com"}},
			{Location: "crm.notes", Fields: map[string]any{"text": "called", "id": 7}},
		},
	}}
	ts := httptest.NewTLSServer(p)
	t.Cleanup(ts.Close)
	return p, ts
}

func secretFile(t *testing.T, value string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func system(url, secretPath string) *datamap.System {
	return &datamap.System{
		Name:       "crm",
		Kind:       datamap.KindWebhook,
		Connection: datamap.SecretRef{File: secretPath},
		Webhook:    &datamap.Webhook{URL: url},
	}
}

func open(t *testing.T, ts *httptest.Server, sys *datamap.System, opts Options) *Conn {
	t.Helper()
	if opts.HTTPClient == nil {
		opts.HTTPClient = ts.Client()
	}
	c, err := Open(context.Background(), sys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func subject(id string) connector.Subject {
	return connector.Subject{ID: id, Identifiers: map[string]string{"email": "someone@example.com", "shop_customer_id": "42", "phone": ""}}
}

// checkClean fails if err's text holds the URL, the secret or the body.
func checkClean(t *testing.T, err error, url string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, bad := range []string{url, strings.TrimPrefix(url, "https://") + "/hook", secret, bodyLeak, "example.com", "?token"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error %q holds %q", err, bad)
		}
	}
}

type sink struct {
	locations []string
	records   []map[string]any
}

func (s *sink) Record(location string, columns []string, values []any) error {
	if !slices.IsSorted(columns) {
		return errors.New("columns not sorted")
	}
	m := map[string]any{}
	for i, c := range columns {
		m[c] = values[i]
	}
	s.locations = append(s.locations, location)
	s.records = append(s.records, m)
	return nil
}

func (s *sink) File(string, string, []byte) error { return errors.New("unexpected file") }

func TestSync(t *testing.T) {
	p, ts := newThirdParty(t)
	sys := system(ts.URL+"/hook?token=abc", secretFile(t, secret))
	sys.Webhook.Callback = true
	c := open(t, ts, sys, Options{})
	ctx := context.Background()
	alice := subject("sub_alice")
	alice.RequestID = "req_1"
	endpoint := ts.URL + "/hook"

	got, err := c.Find(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Count{{Location: endpoint, Count: 3}}; !slices.Equal(got, want) {
		t.Errorf("find: got %v, want %v", got, want)
	}

	out := &sink{}
	got, err = c.Export(ctx, alice, out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Count{{Location: "crm.contacts", Count: 2}, {Location: "crm.notes", Count: 1}}; !slices.Equal(got, want) {
		t.Errorf("export: got %v, want %v", got, want)
	}
	if want := []string{"crm.contacts", "crm.contacts", "crm.notes"}; !slices.Equal(out.locations, want) {
		t.Errorf("export: got locations %v, want %v", out.locations, want)
	}
	if len(out.records) == 3 && out.records[2]["id"] != json.Number("7") {
		t.Errorf("export: got id %v (%T), want the number 7", out.records[2]["id"], out.records[2]["id"])
	}

	hits, _ := p.snapshot()
	plan, err := c.PlanErase(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := p.snapshot(); after != hits {
		t.Errorf("plan: got %d requests, want none", after-hits)
	}
	wantStep := connector.Step{Location: endpoint, Action: connector.ActionNotify, Statement: "POST " + endpoint + " erase", Count: 1}
	if len(plan.Steps) != 1 || !equalStep(plan.Steps[0], wantStep) || plan.Pending {
		t.Errorf("plan: got %+v, want one step %+v", plan, wantStep)
	}

	r, err := c.Erase(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	wantStep.Count = 3
	if len(r.Steps) != 1 || !equalStep(r.Steps[0], wantStep) || r.Pending || r.System != "crm" {
		t.Errorf("erase: got %+v, want one step %+v", r, wantStep)
	}
	again, err := c.Erase(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != 0 {
		t.Errorf("second erase: got %d, want 0", again.Total())
	}
	if got, err := c.Find(ctx, alice); err != nil || got[0].Count != 0 {
		t.Errorf("find after erase: got %v, %v, want 0", got, err)
	}

	_, calls := p.snapshot()
	wantActions := []string{ActionFind, ActionExport, ActionErase, ActionErase, ActionFind}
	if len(calls) != len(wantActions) {
		t.Fatalf("got %d calls, want %d", len(calls), len(wantActions))
	}
	for i, cl := range calls {
		q := cl.Request
		if q.Action != wantActions[i] || q.System != "crm" || q.SubjectID != "sub_alice" || q.RequestID != "req_1" || !q.Callback || q.Values != nil {
			t.Errorf("call %d: got action %s system %s subject %s request %s callback %v, want %s crm sub_alice req_1 true", i, q.Action, q.System, q.SubjectID, q.RequestID, q.Callback, wantActions[i])
		}
		if keys := slices.Sorted(maps.Keys(q.Identifiers)); !slices.Equal(keys, []string{"email", "shop_customer_id"}) {
			t.Errorf("call %d: got identifier kinds %v, want email and shop_customer_id (no empty ones)", i, keys)
		}
		if want := IdempotencyKey("crm", q.Action, "sub_alice", "req_1"); cl.Key != want {
			t.Errorf("call %d: got key %s, want %s", i, cl.Key, want)
		}
	}
	// A retry carries the same key; another action, another key.
	if calls[2].Key != calls[3].Key {
		t.Errorf("got keys %s and %s for two erasures of one request, want equal", calls[2].Key, calls[3].Key)
	}
	if calls[0].Key == calls[2].Key {
		t.Errorf("got one key for find and erase, want two")
	}
}

func equalStep(a, b connector.Step) bool {
	return a.Location == b.Location && a.Action == b.Action && a.Statement == b.Statement && a.Count == b.Count && slices.Equal(a.Columns, b.Columns) && len(a.Keys) == 0 && a.Note == b.Note
}

func TestAsync(t *testing.T) {
	_, ts := newThirdParty(t)
	c := open(t, ts, system(ts.URL+"/hook", secretFile(t, secret)), Options{})
	ctx := context.Background()
	s := subject("sub_async")
	r, err := c.Erase(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Pending || len(r.Steps) != 1 || r.Steps[0].Action != connector.ActionNotify || r.Steps[0].Count != 0 {
		t.Errorf("erase: got %+v, want pending, one notify step counted 0", r)
	}
	r, err = c.Rectify(ctx, s, map[string]string{"user.contact.email": "new@example.com"})
	if err != nil || !r.Pending {
		t.Errorf("rectify: got %+v, %v, want pending", r, err)
	}
	if _, err := c.Find(ctx, s); !errors.Is(err, ErrPending) {
		t.Errorf("find: got %v, want %v", err, ErrPending)
	}
	if _, err := c.Export(ctx, s, &sink{}); !errors.Is(err, ErrPending) {
		t.Errorf("export: got %v, want %v", err, ErrPending)
	}
}

func TestRectify(t *testing.T) {
	p, ts := newThirdParty(t)
	c := open(t, ts, system(ts.URL+"/hook", secretFile(t, secret)), Options{})
	values := map[string]string{"user.name": "Alice L.", "user.contact.email": "new@example.com"}
	r, err := c.Rectify(context.Background(), subject("sub_alice"), values)
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Step{Location: ts.URL + "/hook", Action: connector.ActionNotify, Columns: []string{"user.contact.email", "user.name"}, Statement: "POST " + ts.URL + "/hook rectify", Count: 3}
	if len(r.Steps) != 1 || !equalStep(r.Steps[0], want) {
		t.Errorf("got %+v, want %+v", r.Steps, want)
	}
	_, calls := p.snapshot()
	if len(calls) != 1 || !maps.Equal(calls[0].Request.Values, values) {
		t.Errorf("got %d calls, want 1 with the values", len(calls))
	}
	if _, err := c.Rectify(context.Background(), subject("sub_alice"), nil); err == nil {
		t.Errorf("got no error for no values, want one")
	}
}

func TestErrors(t *testing.T) {
	p, ts := newThirdParty(t)
	good := secretFile(t, secret)
	hour := time.Hour
	for _, tc := range []struct {
		name    string
		subject string
		secret  string
		clock   time.Duration // the signer's clock, off by
		want    string
	}{
		{"server error", "sub_fail", secret, 0, "HTTP 500"},
		{"wrong secret", "sub_alice", "not-the-secret", 0, "HTTP 401"},
		{"old timestamp", "sub_alice", secret, -hour, "HTTP 401"},
		{"future timestamp", "sub_alice", secret, hour, "HTTP 401"},
		{"redirect", "sub_redirect", secret, 0, "HTTP 307"},
		{"too large", "sub_huge", secret, 0, "larger than"},
		{"not json", "sub_garbled", secret, 0, "not the JSON"},
		{"no count", "sub_nocount", secret, 0, "neither count nor held_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := good
			if tc.secret != secret {
				f = secretFile(t, tc.secret)
			}
			c := open(t, ts, system(ts.URL+"/hook?token=abc", f), Options{Now: func() time.Time { return time.Now().Add(tc.clock) }})
			_, err := c.Erase(context.Background(), subject(tc.subject))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "system crm") {
				t.Errorf("got %v, want an error naming system crm and %q", err, tc.want)
			}
			checkClean(t, err, ts.URL)
			if tc.secret != secret {
				checkClean(t, err, tc.secret)
				if strings.Contains(err.Error(), tc.secret) {
					t.Errorf("error holds the secret")
				}
			}
		})
	}
	if _, calls := p.snapshot(); len(calls) == 0 {
		t.Errorf("got no accepted calls, want some")
	}
}

func TestUnreachable(t *testing.T) {
	_, ts := newThirdParty(t)
	url := ts.URL + "/hook?token=abc"
	c := open(t, ts, system(url, secretFile(t, secret)), Options{})
	ts.Close()
	_, err := c.Find(context.Background(), subject("sub_alice"))
	if err == nil {
		t.Fatal("got no error, want one")
	}
	if strings.Contains(err.Error(), url) || strings.Contains(err.Error(), "token") {
		t.Errorf("error %q holds the URL", err)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	// Lethe's own client verifies certificates: the test server's is
	// self-signed.
	_, ts := newThirdParty(t)
	c, err := Open(context.Background(), system(ts.URL+"/hook", secretFile(t, secret)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Find(context.Background(), subject("sub_alice"))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("got %v, want a certificate error", err)
	}
}

func TestOpen(t *testing.T) {
	f := secretFile(t, secret)
	t.Setenv("LETHE_TEST_WEBHOOK_SECRET", secret)
	for _, tc := range []struct {
		name string
		url  string
		ref  datamap.SecretRef
		ok   bool
	}{
		{"https", "https://processor.example/hook", datamap.SecretRef{File: f}, true},
		{"env secret", "https://processor.example/hook", datamap.SecretRef{Env: "LETHE_TEST_WEBHOOK_SECRET"}, true},
		{"http loopback v4", "http://127.0.0.1:8080/hook", datamap.SecretRef{File: f}, true},
		{"http loopback v6", "http://[::1]:8080/hook", datamap.SecretRef{File: f}, true},
		{"http localhost", "http://localhost/hook", datamap.SecretRef{File: f}, true},
		{"http remote", "http://processor.example/hook?token=abc", datamap.SecretRef{File: f}, false},
		{"http private address", "http://10.0.0.1/hook", datamap.SecretRef{File: f}, false},
		{"other scheme", "ftp://processor.example/hook", datamap.SecretRef{File: f}, false},
		{"relative", "/hook", datamap.SecretRef{File: f}, false},
		{"credentials", "https://user:" + secret + "@processor.example/hook", datamap.SecretRef{File: f}, false},
		{"path secret", "https://processor.example/hook", datamap.SecretRef{Path: f}, false},
		{"unset env", "https://processor.example/hook", datamap.SecretRef{Env: "LETHE_TEST_WEBHOOK_UNSET"}, false},
		{"no secret", "https://processor.example/hook", datamap.SecretRef{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := &datamap.System{Name: "crm", Connection: tc.ref, Webhook: &datamap.Webhook{URL: tc.url}}
			c, err := Open(context.Background(), sys, Options{})
			if c != nil {
				c.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				checkClean(t, err, tc.url)
				if strings.Contains(err.Error(), "processor.example") {
					t.Errorf("error %q holds the host", err)
				}
			}
		})
	}
	if _, err := Open(context.Background(), &datamap.System{Name: "crm"}, Options{}); err == nil {
		t.Errorf("got no error without a webhook, want one")
	}
}

func TestSign(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"action":"erase"}`)
	m := hmac.New(sha256.New, []byte("k"))
	m.Write([]byte("1700000000." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign([]byte("k"), body, now); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	key := []byte(secret)
	now := time.Unix(1700000000, 0)
	body := []byte(`{"action":"erase","subject_id":"sub_alice"}`)
	good := Sign(key, body, now)
	other := Sign([]byte("old secret"), body, now)
	_, v1, _ := strings.Cut(good, ",")
	for _, tc := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", key, good, body, now, nil},
		{"within tolerance", key, good, body, now.Add(tolerance), nil},
		{"clock behind", key, good, body, now.Add(-tolerance), nil},
		{"rotated secret", key, other + "," + v1, body, now, nil},
		{"tampered body", key, good, []byte(`{"action":"erase","subject_id":"sub_bob"}`), now, ErrSignature},
		{"wrong secret", []byte("wrong"), good, body, now, ErrSignature},
		{"expired", key, good, body, now.Add(tolerance + time.Second), ErrSignatureExpired},
		{"from the future", key, good, body, now.Add(-tolerance - time.Second), ErrSignatureExpired},
		{"time changed", key, strings.Replace(good, "t=1700000000", "t=1700000001", 1), body, now, ErrSignature},
		{"no time", key, v1, body, now, ErrSignature},
		{"no signature", key, "t=1700000000", body, now, ErrSignature},
		{"empty", key, "", body, now, ErrSignature},
		{"not hex", key, "t=1700000000,v1=zz", body, now, ErrSignature},
		{"short signature", key, "t=1700000000,v1=abcd", body, now, ErrSignature},
		{"two times", key, "t=1,t=1700000000," + v1, body, now, ErrSignature},
		{"signed time padded", key, "t=01700000000," + v1, body, now, ErrSignature},
		{"negative time", key, "t=-5," + v1, body, now, ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifySignature(tc.secret, tc.header, tc.body, tc.now, tolerance); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// A zero tolerance means the default.
	if err := VerifySignature(key, good, body, now.Add(DefaultTolerance), 0); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	h := sha256.Sum256([]byte("crm\x00erase\x00sub_alice\x00req_1\x00"))
	if got, want := IdempotencyKey("crm", "erase", "sub_alice", "req_1"), hex.EncodeToString(h[:]); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if IdempotencyKey("crm", "erase", "sub_a", "lice") == IdempotencyKey("crm", "erase", "sub_alic", "e") {
		t.Errorf("got equal keys for different fields, want different")
	}
}

func TestDefaultTimeout(t *testing.T) {
	sys := system("https://processor.example/hook", secretFile(t, secret))
	c, err := Open(context.Background(), sys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := c.client.Timeout, DefaultTimeout; got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	sys.Webhook.Timeout = datamap.Duration(3 * time.Second)
	c2, err := Open(context.Background(), sys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, want := c2.client.Timeout, 3*time.Second; got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestReadCallback: a signed callback gives the request's tenant, ID and
// count; one with a count or a tenant that cannot be is EINVALID, in words
// that repeat none of the body's values.
func TestReadCallback(t *testing.T) {
	sys := system("https://processor.example/hook", secretFile(t, secret))
	sys.Webhook.Callback = true
	now := time.Now()
	const id = "req_abcdefghijklmnopqrstuvwxyz"
	tests := []struct {
		name        string
		body        string
		tenant      string
		count       int64
		code        string   // "" for success
		notInDetail []string // values the error must not repeat
	}{
		{"done", `{"request_id":"` + id + `","action":"erase","status":"done","count":3}`, lethe.DefaultTenant, 3, "", nil},
		{"in a tenant", `{"request_id":"` + id + `","tenant":"acme","action":"erase","status":"done","count":2}`, "acme", 2, "", nil},
		{"held no data", `{"request_id":"` + id + `","action":"erase","status":"done","count":3,"held_data":false}`, lethe.DefaultTenant, 0, "", nil},
		{"zero count", `{"request_id":"` + id + `","action":"erase","status":"done","count":0}`, lethe.DefaultTenant, 0, "", nil},
		{"negative count", `{"request_id":"` + id + `","action":"erase","status":"done","count":-7}`, "", 0, lethe.EINVALID, []string{"-7"}},
		{"negative count held no data", `{"request_id":"` + id + `","action":"erase","status":"done","count":-7,"held_data":false}`, "", 0, lethe.EINVALID, []string{"-7"}},
		{"upper-case tenant", `{"request_id":"` + id + `","tenant":"Acme","action":"erase","status":"done"}`, "", 0, lethe.EINVALID, []string{"Acme"}},
		{"tenant with a path", `{"request_id":"` + id + `","tenant":"../acme","action":"erase","status":"done"}`, "", 0, lethe.EINVALID, []string{"../acme"}},
		{"tenant holding an address", `{"request_id":"` + id + `","tenant":"alice@example.com","action":"erase","status":"done"}`, "", 0, lethe.EINVALID, []string{"alice@example.com"}},
		{"long tenant", `{"request_id":"` + id + `","tenant":"` + strings.Repeat("a", 64) + `","action":"erase","status":"done"}`, "", 0, lethe.EINVALID, []string{strings.Repeat("a", 64)}},
		{"not done", `{"request_id":"` + id + `","action":"erase","status":"accepted"}`, "", 0, lethe.EINVALID, nil},
		{"bad request ID", `{"request_id":"req_1","action":"erase","status":"done"}`, "", 0, lethe.EINVALID, []string{"req_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			tenant, gotID, count, err := ReadCallback(sys, Sign([]byte(secret), body, now), body, now)
			if got := lethe.ErrorCode(err); got != tt.code {
				t.Fatalf("code: got %q (%v), want %q", got, err, tt.code)
			}
			if tt.code != "" {
				for i, v := range tt.notInDetail {
					if strings.Contains(err.Error(), v) {
						t.Errorf("the error repeats value %d of the body", i)
					}
				}
				return
			}
			if tenant != tt.tenant || gotID != id || count != tt.count {
				t.Errorf("got %s %s %d, want %s %s %d", tenant, gotID, count, tt.tenant, id, tt.count)
			}
		})
	}
	body := []byte(`{"request_id":"` + id + `","action":"erase","status":"done"}`)
	if _, _, _, err := ReadCallback(sys, Sign([]byte("another secret"), body, now), body, now); lethe.ErrorCode(err) != lethe.EUNAUTHORIZED {
		t.Errorf("signed with another secret: got %v, want %s", err, lethe.EUNAUTHORIZED)
	}
}
