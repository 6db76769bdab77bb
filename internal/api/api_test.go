package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/consent"
	"github.com/lethe-privacy/lethe/internal/jobs"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/request"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/vault"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json from the code")

// testPurposes are the purposes the API tests declare: one per kind of
// legal basis they exercise.
var testPurposes = []lethe.Purpose{
	{Key: "billing", Description: "Invoices and payment", Basis: lethe.BasisContract, Categories: []string{"user.financial"},
		Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("a", 64)}},
	{Key: "newsletter", Description: "Monthly newsletter", Basis: lethe.BasisConsent, DirectMarketing: true, Categories: []string{"user.contact.email"},
		Policy: lethe.PolicyVersion{Version: "2026-02", TextHash: strings.Repeat("b", 64)}, Accepted: []lethe.PolicyVersion{{Version: "2025-09", TextHash: strings.Repeat("c", 64)}}},
	{Key: "analytics", Description: "Product analytics", Basis: lethe.BasisLegitimateInterests,
		Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("d", 64)}},
}

type fixture struct {
	reqStore lethe.RequestStore
	outbox   *mail.Outbox
	requests *request.Service
	audit    *audit.Log
	auditDir string
	vault    lethe.Vault
	srv      *api.Server
	http     *httptest.Server
	keys     lethe.APIKeyStore
	logs     *bytes.Buffer
	admin    string
	now      time.Time
}

func newFixture(t *testing.T, o api.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.OpenData(ctx, filepath.Join(dir, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	keysDB, err := sqlite.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); keysDB.Close() })
	kms, _, err := vault.OpenLocalKMS(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: sqlite.NewAPIKeyStore(db), logs: &bytes.Buffer{}, now: time.Now(), auditDir: filepath.Join(dir, "audit")}
	f.audit = audittest.Open(t, f.auditDir, sqlite.NewKeyStore(keysDB))
	if o.Audit == nil {
		o.Audit = f.audit
	}
	cs, err := consent.New(ctx, consent.Config{
		Store: sqlite.NewConsentStore(db), Subjects: vault.Directory{Store: sqlite.NewVaultStore(db), Keys: sqlite.NewKeyStore(keysDB)},
		Audit: f.audit, Purposes: testPurposes, ProofKey: bytes.Repeat([]byte{7}, 32), Follow: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	if o.Consent == nil {
		o.Consent = cs
	}
	if o.Vault == nil {
		o.Vault, err = vault.New(ctx, vault.Config{Store: sqlite.NewVaultStore(db), Keys: sqlite.NewKeyStore(keysDB), KMS: kms, Audit: f.audit, Purposes: cs, Erasures: cs})
		if err != nil {
			t.Fatal(err)
		}
	}
	f.vault = o.Vault
	if o.Requests == nil {
		if f.outbox, err = mail.NewOutbox(filepath.Join(dir, "outbox")); err != nil {
			t.Fatal(err)
		}
		sealKey := vault.NewKey()
		seal := func(p, ad []byte) []byte { return vault.Seal(&sealKey, p, ad) }
		unseal := func(s, ad []byte) ([]byte, error) { return vault.Open(&sealKey, s, ad) }
		f.reqStore = sqlite.NewRequestStore(db)
		v := f.vault.(*vault.Service)
		// A runner over no systems, on a real queue, for the retry route.
		_, priv, _ := ed25519.GenerateKey(nil)
		runner, err := request.NewRunner(request.RunnerConfig{Store: f.reqStore, Open: func(context.Context, string) (connector.Connector, error) {
			return nil, errors.New("no systems")
		}, Vault: v, Audit: f.audit, Seal: seal, OpenSeal: unseal,
			Mail: f.outbox, BaseURL: func() string { return "https://lethe.example" }, Summary: request.Summary{Organisation: "Example Shop Ltd"},
			PseudonymKey: func(ctx context.Context, tenant, id string) ([]byte, error) {
				k, err := v.PseudonymKey(ctx, tenant, id)
				return k[:], err
			},
			Sign: func(m []byte) []byte { return ed25519.Sign(priv, m) },
			Callback: func(system, sig string, body []byte) (string, string, int64, error) {
				if system != "mailer" {
					return "", "", 0, lethe.Errorf(lethe.ENOTFOUND, "no such system")
				}
				if err := webhook.VerifySignature([]byte(callbackSecret), sig, body, time.Now(), 0); err != nil {
					return "", "", 0, lethe.Errorf(lethe.EUNAUTHORIZED, "bad signature")
				}
				var cb webhook.Callback
				json.Unmarshal(body, &cb)
				return cb.Tenant, cb.RequestID, *cb.Count, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		qdb, err := jobs.OpenSQLite(filepath.Join(dir, "jobs.db"))
		if err != nil {
			t.Fatal(err)
		}
		jc := jobs.Config{SQLite: qdb, Workers: runner.Workers(), FetchPollInterval: 100 * time.Millisecond}
		if err := jobs.Migrate(ctx, jc); err != nil {
			t.Fatal(err)
		}
		q, err := jobs.New(ctx, jc)
		if err != nil {
			t.Fatal(err)
		}
		q.Start(ctx)
		t.Cleanup(func() { sctx, cancel := context.WithTimeout(ctx, 5*time.Second); q.Stop(sctx); cancel(); qdb.Close() })
		runner.SetQueue(q)
		f.requests, err = request.New(request.Config{
			Store: f.reqStore, Subjects: v, Mail: f.outbox, Audit: f.audit, Key: bytes.Repeat([]byte{8}, 32),
			Seal: seal, Open: unseal, Runner: runner,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Requests = f.requests
	}
	o.Keys = f.keys
	o.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.Ready == nil {
		o.Ready = map[string]lethe.Pinger{"data_store": db}
	}
	f.srv = api.New(o)
	f.http = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.http.Close)
	f.admin = f.addKey(t, "admin", lethe.RoleAdmin)
	return f
}

func (f *fixture) addKey(t *testing.T, name string, role lethe.Role) string {
	t.Helper()
	k, secret, err := lethe.NewAPIKey(name, role, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.keys.CreateAPIKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret
}

// do sends a request and returns the status and body.
func (f *fixture) do(t *testing.T, method, path, key string, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.http.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		// A stream does not end: read its first event only.
		b, err := bufio.NewReader(resp.Body).ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func problem(t *testing.T, resp *http.Response, body []byte) api.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type: got %q, want application/problem+json (status %d)", ct, resp.StatusCode)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Status != resp.StatusCode || p.Type != "urn:lethe:error:"+p.Code || p.RequestID == "" || p.Detail == "" {
		t.Fatalf("problem fields inconsistent: %+v (status %d)", p, resp.StatusCode)
	}
	return p
}

var seq atomic.Int64

// prepare returns a path and body with which route rt succeeds for a caller
// allowed to call it, making whatever the route needs (a key to revoke, a
// subject to read or erase).
func (f *fixture) prepare(t *testing.T, rt api.Route) (string, string) {
	t.Helper()
	ctx := context.Background()
	n := seq.Add(1)
	newSubject := func() string {
		email := fmt.Sprintf("matrix%d@example.com", n)
		v, err := f.vault.CreateSubject(ctx, lethe.Actor{KeyID: "key_fixture", Role: lethe.RoleService}, lethe.NewSubject{Identifiers: map[string]string{"email": email}})
		if err != nil {
			t.Fatal(err)
		}
		return v.ID
	}
	switch rt.Method + " " + rt.Path {
	case "DELETE /v1/keys/{id}":
		victim, _, _ := lethe.NewAPIKey("victim", lethe.RoleService, time.Now(), nil)
		if err := f.keys.CreateAPIKey(ctx, victim); err != nil {
			t.Fatal(err)
		}
		return "/v1/keys/" + victim.ID, ""
	case "POST /v1/keys":
		return rt.Path, `{"name":"made by matrix","role":"service"}`
	case "POST /v1/subjects":
		return rt.Path, fmt.Sprintf(`{"identifiers":{"email":"new%d@example.com"},"profile":{"name":"M"}}`, n)
	case "POST /v1/subjects/lookup":
		newSubject()
		return rt.Path, fmt.Sprintf(`{"kind":"email","value":"matrix%d@example.com"}`, n)
	case "DELETE /v1/tenants/{tenant}":
		tenant := fmt.Sprintf("matrix%d", n)
		if _, err := f.vault.CreateSubject(ctx, lethe.Actor{KeyID: "key_fixture", Role: lethe.RoleService}, lethe.NewSubject{Tenant: tenant, Identifiers: map[string]string{"login": "x"}}); err != nil {
			t.Fatal(err)
		}
		return "/v1/tenants/" + tenant, fmt.Sprintf(`{"confirm":%q}`, tenant)
	case "POST /v1/tokens":
		return rt.Path, fmt.Sprintf(`{"subject_id":%q,"tokens":[{"field":"card","value":"4111"}]}`, newSubject())
	case "POST /v1/detokenize":
		id := newSubject()
		v := "4111"
		toks, err := f.vault.Tokenize(ctx, lethe.Actor{KeyID: "key_fixture", Role: lethe.RoleService}, lethe.DefaultTenant, id, []lethe.TokenRequest{{Field: "card", Value: &v}})
		if err != nil {
			t.Fatal(err)
		}
		return rt.Path, fmt.Sprintf(`{"purpose":"billing","tokens":[%q,%q]}`, toks[0].Token, toks[0].Token)
	case "PATCH /v1/subjects/{id}":
		return "/v1/subjects/" + newSubject(), `{"profile":{"x":1},"reason":"matrix"}`
	case "GET /v1/forgotten/{ref}":
		// A live subject's token: the check resolves it for real and
		// answers 200.
		toks, err := f.vault.Tokenize(ctx, lethe.Actor{KeyID: "key_fixture", Role: lethe.RoleService}, lethe.DefaultTenant, newSubject(), []lethe.TokenRequest{{Field: "email"}})
		if err != nil {
			t.Fatal(err)
		}
		return "/v1/forgotten/" + toks[0].Token, ""
	case "GET /v1/audit":
		return rt.Path + "?subject=" + newSubject(), ""
	case "POST /v1/consent":
		return rt.Path, fmt.Sprintf(`{"records":[{"subject_id":%q,"purpose":"newsletter","kind":"grant"}]}`, newSubject())
	case "POST /v1/consent/import":
		return rt.Path, fmt.Sprintf(`{"records":[{"subject_id":%q,"purpose":"newsletter","kind":"grant"}]}`, newSubject())
	case "GET /v1/consent/check":
		return rt.Path + "?purpose=billing&subject=" + newSubject(), ""
	case "POST /v1/consent/check":
		return rt.Path, fmt.Sprintf(`{"purpose":"billing","subjects":[%q]}`, newSubject())
	case "POST /v1/requests":
		return rt.Path, fmt.Sprintf(`{"type":"access","subject_id":%q,"contact":"matrix%d@example.com","verified":true}`, newSubject(), n)
	case "GET /v1/requests/{id}":
		return "/v1/requests/" + f.newRequest(t, lethe.RequestAccess, newSubject()).ID, ""
	case "POST /v1/requests/{id}/approve":
		return "/v1/requests/" + f.newRequest(t, lethe.RequestErasure, newSubject()).ID + "/approve", ""
	case "POST /v1/requests/{id}/systems/{system}/done":
		return "/v1/requests/" + f.waitingRequest(t, newSubject()) + "/systems/crm/done", `{"count":2,"note":"rows deleted from the spreadsheet"}`
	case "GET /v1/self/downloads/{link}":
		return "/v1/self/downloads/" + f.accessLink(t, newSubject()), ""
	case "POST /v1/callbacks/{system}":
		return "/v1/callbacks/mailer", fmt.Sprintf(`{"request_id":%q,"tenant":"default","action":"erase","status":"done","count":1}`, f.waitingRequest(t, newSubject()))
	case "POST /v1/requests/{id}/retry":
		// A partially completed request (moved there through the store:
		// the fixture's service runs nothing by itself).
		r := f.newRequest(t, lethe.RequestErasure, newSubject())
		for _, st := range []lethe.RequestState{lethe.RequestApproved, lethe.RequestRunning, lethe.RequestPartial} {
			r.State = st
			if err := f.reqStore.UpdateRequest(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		return "/v1/requests/" + r.ID + "/retry", ""
	case "POST /v1/requests/{id}/extend":
		r := f.newRequest(t, lethe.RequestErasure, newSubject()) // waits for approval: still open
		return "/v1/requests/" + r.ID + "/extend", fmt.Sprintf(`{"until":%q,"reason":"matrix"}`, r.ReceivedAt.AddDate(0, 2, 0).Format(time.RFC3339Nano))
	case "POST /v1/requests/{id}/close":
		return "/v1/requests/" + f.newRequest(t, lethe.RequestErasure, newSubject()).ID + "/close", `{"state":"cancelled","reason":"matrix"}`
	case "POST /v1/self/requests":
		return rt.Path, fmt.Sprintf(`{"type":"access","contact":"self%d@example.com"}`, n)
	case "POST /v1/self/requests/{id}/verify":
		id, code := f.selfRequest(t, fmt.Sprintf("self%d@example.com", n))
		return "/v1/self/requests/" + id + "/verify", fmt.Sprintf(`{"code":%q}`, code)
	case "POST /v1/self/requests/{id}/code":
		id, _ := f.selfRequest(t, fmt.Sprintf("self%d@example.com", n))
		return "/v1/self/requests/" + id + "/code", `{}`
	}
	if strings.Contains(rt.Path, "{id}") && strings.HasPrefix(rt.Path, "/v1/subjects/") {
		return strings.Replace(rt.Path, "{id}", newSubject(), 1), ""
	}
	if strings.Contains(rt.Path, "{") {
		t.Fatalf("the matrix test does not know how to call %s %s: add it to prepare", rt.Method, rt.Path)
	}
	return rt.Path, ""
}

var linkRE = regexp.MustCompile(`/v1/self/downloads/(\S+)`)

// accessLink runs an access request to the end and returns the one-time
// link mailed for its archive.
func (f *fixture) accessLink(t *testing.T, subject string) string {
	t.Helper()
	r := f.newRequest(t, lethe.RequestAccess, subject)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := f.reqStore.Request(context.Background(), lethe.DefaultTenant, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State == lethe.RequestCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access request stayed %s", cur.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	names, _ := f.outbox.List()
	for i := len(names) - 1; i >= 0; i-- {
		m, _ := mail.ReadMessage(names[i])
		if l := linkRE.FindStringSubmatch(m.Text); l != nil && strings.Contains(l[1], r.ID) {
			return l[1]
		}
	}
	t.Fatal("no link was mailed")
	return ""
}

// callbackSecret is the fixture's mailer system's shared secret.
const callbackSecret = "the mailer's shared secret"

// waitingRequest makes a running erasure whose systems crm and mailer
// wait for acknowledgements, and returns its ID.
func (f *fixture) waitingRequest(t *testing.T, subject string) string {
	t.Helper()
	ctx := context.Background()
	r := f.newRequest(t, lethe.RequestErasure, subject)
	for _, st := range []lethe.RequestState{lethe.RequestApproved, lethe.RequestRunning} {
		r.State = st
		if err := f.reqStore.UpdateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := f.reqStore.PutTasks(ctx, []lethe.RequestTask{
		{RequestID: r.ID, System: "crm", State: lethe.TaskWaiting, UpdatedAt: now},
		{RequestID: r.ID, System: "mailer", State: lethe.TaskWaiting, UpdatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// newRequest records a request staff verified.
func (f *fixture) newRequest(t *testing.T, typ lethe.RequestType, subject string) *lethe.Request {
	t.Helper()
	r, err := f.requests.Create(context.Background(), lethe.Actor{KeyID: "key_fixture", Role: lethe.RoleDPO}, lethe.DefaultTenant,
		lethe.RequestAsk{Type: typ, SubjectID: subject, Contact: "staff@example.com", Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var selfCodeRE = regexp.MustCompile(`your code is: (\d{8})`)

// selfRequest makes a person's own access request and returns its ID and
// the code mailed for it.
func (f *fixture) selfRequest(t *testing.T, addr string) (string, string) {
	t.Helper()
	r, err := f.requests.Create(context.Background(), lethe.RequestSelf, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, Contact: addr})
	if err != nil {
		t.Fatal(err)
	}
	// The newest message to addr with a code: other requests' runs mail
	// their people meanwhile.
	names, _ := f.outbox.List()
	for i := len(names) - 1; i >= 0; i-- {
		m, err := mail.ReadMessage(names[i])
		if err != nil {
			t.Fatal(err)
		}
		if c := selfCodeRE.FindStringSubmatch(m.Text); c != nil && m.To == addr {
			return r.ID, c[1]
		}
	}
	t.Fatalf("no code was mailed for request %s", r.ID)
	return "", ""
}

// TestAuthorizationMatrix walks every route with no credentials and with a
// key of every role, and checks allow/deny exactly as lethe.Role.Can says.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t, api.Options{RateLimit: 1e6, SelfRateLimit: 1e6})
	callers := map[string]lethe.Role{"": ""}
	for _, role := range lethe.Roles {
		callers[f.addKey(t, "matrix-"+string(role), role)] = role
	}
	for _, rt := range f.srv.Routes() {
		for key, role := range callers {
			name := string(role)
			if key == "" {
				name = "anonymous"
			}
			t.Run(rt.Method+" "+rt.Path+" as "+name, func(t *testing.T) {
				path, body := f.prepare(t, rt)
				var hdr []string
				if rt.Path == "/v1/callbacks/{system}" {
					hdr = []string{webhook.SignatureHeader, webhook.Sign([]byte(callbackSecret), []byte(body), time.Now())}
				}
				resp, b := f.do(t, rt.Method, path, key, body, hdr...)
				switch {
				case rt.Permission == lethe.PermPublic:
					if resp.StatusCode != rt.Status {
						t.Errorf("got %d, want %d: %s", resp.StatusCode, rt.Status, b)
					}
				case key == "":
					if resp.StatusCode != http.StatusUnauthorized {
						t.Errorf("got %d, want 401", resp.StatusCode)
					}
					problem(t, resp, b)
				case role.Can(rt.Permission):
					if resp.StatusCode != rt.Status {
						t.Errorf("got %d, want %d: %s", resp.StatusCode, rt.Status, b)
					}
				default:
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("got %d, want 403", resp.StatusCode)
					}
					if p := problem(t, resp, b); p.Code != lethe.EFORBIDDEN {
						t.Errorf("code: got %q, want %q", p.Code, lethe.EFORBIDDEN)
					}
				}
			})
		}
	}
}

func TestUnmatchedPaths(t *testing.T) {
	f := newFixture(t, api.Options{})
	tests := []struct {
		name, method, path, key string
		want                    int
	}{
		{"unknown path anonymous", "GET", "/v1/nope", "", 401},
		{"unknown path", "GET", "/v1/nope", f.admin, 404},
		{"wrong method anonymous", "PUT", "/v1/keys", "", 401},
		{"wrong method", "PUT", "/v1/keys", f.admin, 405},
		{"root", "GET", "/", f.admin, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.do(t, tt.method, tt.path, tt.key, "")
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			problem(t, resp, b)
			if tt.want == 405 && resp.Header.Get("Allow") != "GET, HEAD, POST" {
				t.Errorf("Allow: got %q, want %q", resp.Header.Get("Allow"), "GET, HEAD, POST")
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, api.Options{MaxBodyBytes: 1024})
	tests := []struct {
		name, body, contentType string
		want                    int
		detail                  string
	}{
		{"malformed JSON", `{"name":`, "", 400, "malformed JSON"},
		{"syntax error", `{"name" "x"}`, "", 400, "malformed JSON at byte"},
		{"empty body", ``, "", 400, "empty"},
		{"unknown field", `{"name":"x","role":"service","colour":"red"}`, "", 400, `unknown field "colour"`},
		{"wrong type", `{"name":42,"role":"service"}`, "", 400, `field "name" must be a JSON string`},
		{"not an object", `[1,2]`, "", 400, "must be a JSON object"},
		{"two values", `{"name":"x","role":"service"}{}`, "", 400, "single JSON value"},
		{"huge body", `{"name":"` + strings.Repeat("a", 4096) + `","role":"service"}`, "", 413, "exceeds 1024 bytes"},
		{"wrong media type", `{"name":"x","role":"service"}`, "text/plain", 415, "application/json"},
		{"bad role", `{"name":"x","role":"root"}`, "", 400, "unknown role"},
		{"bad expiry", `{"name":"x","role":"service","expires_at":"yesterday"}`, "", 400, "RFC 3339"},
		{"past expiry", `{"name":"x","role":"service","expires_at":"2001-01-01T00:00:00Z"}`, "", 400, "future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := f.keys.APIKeys(context.Background())
			req, _ := http.NewRequest("POST", f.http.URL+"/v1/keys", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+f.admin)
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := f.http.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			if p := problem(t, resp, b); !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail: got %q, want it to contain %q", p.Detail, tt.detail)
			}
			after, _ := f.keys.APIKeys(context.Background())
			if len(after) != len(before) {
				t.Errorf("bad input changed the store: got %d keys, want %d", len(after), len(before))
			}
		})
	}
}

func TestKeyLifecycle(t *testing.T) {
	f := newFixture(t, api.Options{})
	resp, b := f.do(t, "POST", "/v1/keys", f.admin, `{"name":"shop","role":"service"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: got %d, want 201: %s", resp.StatusCode, b)
	}
	var created struct {
		ID, Secret string
		Active     bool
	}
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	if !created.Active || !strings.HasPrefix(created.Secret, lethe.APIKeySecretPrefix) {
		t.Fatalf("created key: got %+v", created)
	}
	if resp, b := f.do(t, "GET", "/v1/whoami", created.Secret, ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"role":"service"`) {
		t.Fatalf("whoami with new key: got %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/v1/keys", f.admin, "")
	if resp.StatusCode != 200 || strings.Contains(string(b), created.Secret) || strings.Contains(string(b), "hash") {
		t.Fatalf("list: got %d, and it must not reveal secrets or hashes", resp.StatusCode)
	}
	if resp, b := f.do(t, "DELETE", "/v1/keys/"+created.ID, f.admin, ""); resp.StatusCode != 204 {
		t.Fatalf("revoke: got %d %s", resp.StatusCode, b)
	}
	if resp, _ := f.do(t, "GET", "/v1/whoami", created.Secret, ""); resp.StatusCode != 401 {
		t.Fatalf("revoked key: got %d, want 401", resp.StatusCode)
	}
	if resp, _ := f.do(t, "DELETE", "/v1/keys/key_doesnotexist", f.admin, ""); resp.StatusCode != 404 {
		t.Fatalf("revoke unknown: got %d, want 404", resp.StatusCode)
	}
}

func TestLastAdminCannotBeRevoked(t *testing.T) {
	f := newFixture(t, api.Options{})
	_, b := f.do(t, "GET", "/v1/whoami", f.admin, "")
	var me struct {
		KeyID string `json:"key_id"`
	}
	json.Unmarshal(b, &me)
	resp, b := f.do(t, "DELETE", "/v1/keys/"+me.KeyID, f.admin, "")
	if resp.StatusCode != 409 {
		t.Fatalf("got %d, want 409: %s", resp.StatusCode, b)
	}
	second := f.addKey(t, "second admin", lethe.RoleAdmin)
	if resp, b := f.do(t, "DELETE", "/v1/keys/"+me.KeyID, second, ""); resp.StatusCode != 204 {
		t.Fatalf("with a second admin: got %d, want 204: %s", resp.StatusCode, b)
	}
}

func TestExpiredKeyRejected(t *testing.T) {
	now := time.Now()
	clock := now
	f := newFixture(t, api.Options{Now: func() time.Time { return clock }})
	exp := now.Add(time.Hour)
	k, secret, _ := lethe.NewAPIKey("temp", lethe.RoleService, now, &exp)
	f.keys.CreateAPIKey(context.Background(), k)
	if resp, _ := f.do(t, "GET", "/v1/whoami", secret, ""); resp.StatusCode != 200 {
		t.Fatalf("before expiry: got %d, want 200", resp.StatusCode)
	}
	clock = now.Add(2 * time.Hour)
	if resp, _ := f.do(t, "GET", "/v1/whoami", secret, ""); resp.StatusCode != 401 {
		t.Fatalf("after expiry: got %d, want 401", resp.StatusCode)
	}
}

func TestMalformedAuthorization(t *testing.T) {
	f := newFixture(t, api.Options{})
	for _, h := range []string{"Basic abc", "Bearer", "Bearer ", "lethe_abc", "Bearer lethe_wrong"} {
		resp, b := f.do(t, "GET", "/v1/whoami", "", "", "Authorization", h)
		if resp.StatusCode != 401 {
			t.Errorf("%q: got %d, want 401", h, resp.StatusCode)
		}
		problem(t, resp, b)
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no WWW-Authenticate header", h)
		}
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, api.Options{RateLimit: 1, RateBurst: 3})
	other := f.addKey(t, "other", lethe.RoleService)
	for i := 0; i < 3; i++ {
		if resp, _ := f.do(t, "GET", "/v1/whoami", f.admin, ""); resp.StatusCode != 200 {
			t.Fatalf("request %d: got %d, want 200", i, resp.StatusCode)
		}
	}
	resp, b := f.do(t, "GET", "/v1/whoami", f.admin, "")
	if resp.StatusCode != 429 {
		t.Fatalf("over the burst: got %d, want 429", resp.StatusCode)
	}
	if p := problem(t, resp, b); p.Code != lethe.ERATELIMIT {
		t.Errorf("code: got %q, want %q", p.Code, lethe.ERATELIMIT)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After: got %q, want %q", ra, "1")
	}
	if resp, _ := f.do(t, "GET", "/v1/whoami", other, ""); resp.StatusCode != 200 {
		t.Errorf("another principal: got %d, want 200 (limits are per principal)", resp.StatusCode)
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, api.Options{})
	resp, _ := f.do(t, "GET", "/healthz", "", "", "X-Request-Id", "abc-123")
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("kept id: got %q, want %q", got, "abc-123")
	}
	resp, _ = f.do(t, "GET", "/healthz", "", "", "X-Request-Id", "bad id\twith tab")
	if got := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(got, "req_") {
		t.Errorf("replaced id: got %q, want a generated req_ id", got)
	}
}

type failingPinger struct{}

func (failingPinger) Ping(context.Context) error { return errors.New("connection refused") }

func TestReadiness(t *testing.T) {
	f := newFixture(t, api.Options{Ready: map[string]lethe.Pinger{"key_store": failingPinger{}}})
	resp, b := f.do(t, "GET", "/readyz", "", "")
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"key_store":"unavailable"`) || strings.Contains(string(b), "refused") {
		t.Fatalf("got %d %s, want 503 naming the check without the reason", resp.StatusCode, b)
	}
}

func TestMetricsHaveNoPersonalLabels(t *testing.T) {
	f := newFixture(t, api.Options{})
	f.do(t, "GET", "/v1/nope/jane.doe@example.com", f.admin, "")
	resp, b := f.do(t, "GET", "/metrics", f.admin, "")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	if !strings.Contains(string(b), `lethe_http_requests_total{method="GET",route="/v1/whoami"`) && !strings.Contains(string(b), `route="unmatched"`) {
		t.Errorf("request counter missing")
	}
	if strings.Contains(string(b), "jane.doe") {
		t.Errorf("a path value reached the metrics")
	}
	if strings.Contains(f.logs.String(), "jane.doe") {
		t.Errorf("a path value reached the log")
	}
}

func TestLogsCarryNoSecretsOrBodies(t *testing.T) {
	f := newFixture(t, api.Options{})
	_, b := f.do(t, "POST", "/v1/keys", f.admin, `{"name":"jane.doe@example.com","role":"service"}`)
	f.do(t, "POST", "/v1/keys", f.admin, `{"name":"x","role":"service","jane.doe@example.com":1}`)
	var created struct{ Secret string }
	json.Unmarshal(b, &created)
	logs := f.logs.String()
	for _, secret := range []string{f.admin, created.Secret, "jane.doe"} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("log holds a value it must not (%d bytes of logs)", len(logs))
		}
	}
	if !regexp.MustCompile(`"route":"/v1/keys"`).MatchString(logs) {
		t.Error("access log line missing")
	}
}

func TestPanicIsA500WithoutDetail(t *testing.T) {
	// A store that panics stands in for any bug below the handler.
	srv := api.New(api.Options{Keys: panickingStore{}, Logger: slog.New(slog.DiscardHandler)})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer lethe_x")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(b), "secret-value") {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
}

type panickingStore struct{ lethe.APIKeyStore }

func (panickingStore) APIKeyByHash(context.Context, []byte) (*lethe.APIKey, error) {
	panic("secret-value")
}

// TestOpenAPIInSync checks that docs/openapi.json is what the code
// generates and that it names every route with its permission. Run
// `go test ./internal/api -run OpenAPI -update` after changing a route.
func TestOpenAPIInSync(t *testing.T) {
	f := newFixture(t, api.Options{})
	resp, b := f.do(t, "GET", "/v1/openapi.json", f.admin, "")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi: got %q, want 3.1.0", doc.OpenAPI)
	}
	n := 0
	for _, p := range doc.Paths {
		n += len(p)
	}
	if n != len(f.srv.Routes()) {
		t.Errorf("operations: got %d, want %d", n, len(f.srv.Routes()))
	}
	for _, rt := range f.srv.Routes() {
		op := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if op == nil || op["x-lethe-permission"] != string(rt.Permission) {
			t.Errorf("%s %s: missing or wrong permission in the document", rt.Method, rt.Path)
		}
	}
	pretty, err := json.MarshalIndent(f.srv.OpenAPI(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	pretty = append(pretty, '\n')
	path := filepath.Join("..", "..", "docs", "openapi.json")
	if *update {
		if err := os.WriteFile(path, pretty, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, pretty) {
		t.Errorf("docs/openapi.json is stale: run go test ./internal/api -run OpenAPI -update")
	}
}

// TestRolesDocMatchesMatrix checks the permission table in docs/roles.md
// against lethe.Role.Can, cell by cell, and that every route is listed.
func TestRolesDocMatchesMatrix(t *testing.T) {
	f := newFixture(t, api.Options{})
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "roles.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) != len(lethe.Roles)+1 {
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[strings.Trim(cells[0], "`")] = cells[1:]
	}
	for _, p := range lethe.Permissions {
		cells, ok := rows[string(p)]
		if !ok {
			t.Errorf("docs/roles.md has no row for permission %s", p)
			continue
		}
		for i, r := range lethe.Roles {
			want := "no"
			if r.Can(p) {
				want = "yes"
			}
			if cells[i] != want {
				t.Errorf("docs/roles.md %s × %s: got %q, want %q", p, r, cells[i], want)
			}
		}
	}
	for _, rt := range f.srv.Routes() {
		entry := fmt.Sprintf("`%s %s`", rt.Method, rt.Path)
		if !strings.Contains(string(doc), entry) {
			t.Errorf("docs/roles.md does not list route %s", entry)
		}
	}
}
