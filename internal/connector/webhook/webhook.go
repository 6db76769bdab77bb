// Package webhook is the connector for a third party told over signed
// HTTPS: a processor or recipient that holds a subject's data and that
// Lethe asks, by posting JSON to the URL the data map gives, to find,
// export, erase or rectify it.
//
// Every request is one POST of a JSON Request, with the headers
//
//	Content-Type: application/json
//	Lethe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//	Idempotency-Key: <IdempotencyKey(system, action, subject ID, request ID)>
//
// where the secret is what the system's connection names (an environment
// variable or a file; never a path in the manifest). The third party
// checks the signature with the same secret (VerifySignature does it in
// Go), and answers 200 with a Response whose status is "done", or 202
// ("accepted") when it will acknowledge later through Lethe's callback;
// the report is then Pending. Any other status is an error naming the
// system and the status, never the body, which may hold personal data.
// Answers are read up to 10 MB.
//
// The request carries the subject's identifiers, which the third party
// needs to find the person in its own records and already holds, and
// nothing else of theirs. Errors carry neither the URL (its query may
// hold a token) nor the secret.
//
// The URL must be https://, whose certificate is verified; plain http://
// is allowed only to a loopback address (localhost, 127.0.0.0/8, ::1),
// where nothing crosses a network, for tests and local sidecars. Redirects
// are not followed: a signed body goes only where the map says.
//
// Each call makes one attempt: retrying is the job queue's work, and the
// Idempotency-Key makes a retry safe.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// The actions a Request names.
const (
	ActionFind    = "find"
	ActionExport  = "export"
	ActionErase   = "erase"
	ActionRectify = "rectify"
)

// The statuses a Response names.
const (
	StatusDone     = "done"
	StatusAccepted = "accepted"
)

// MaxResponse is the largest answer read, in bytes.
const MaxResponse = 10 << 20

// DefaultTimeout is the time one HTTP call may take when the data map
// gives none.
const DefaultTimeout = 10 * time.Second

// Request is the JSON body Lethe posts.
type Request struct {
	Action    string `json:"action"` // ActionFind, ActionExport, ActionErase or ActionRectify
	System    string `json:"system"` // the system's name in the data map
	SubjectID string `json:"subject_id"`
	// Identifiers are the subject's identifiers by kind (email, phone,
	// the app's own).
	Identifiers map[string]string `json:"identifiers"`
	RequestID   string            `json:"request_id"`
	Tenant      string            `json:"tenant,omitempty"` // the request's tenant, to give back in a callback
	// Callback says Lethe expects the acknowledgement later, through its
	// callback, rather than in the answer.
	Callback bool `json:"callback"`
	// Values are the corrected values by data category, for rectify only.
	Values map[string]string `json:"values,omitempty"`
}

// Response is the JSON body a third party answers with.
type Response struct {
	Status string `json:"status"` // StatusDone or StatusAccepted
	// Count is how many records the third party holds (find) or erased or
	// corrected (erase, rectify).
	Count *int64 `json:"count,omitempty"`
	// HeldData false says the third party holds nothing of the subject:
	// the count is 0.
	HeldData *bool `json:"held_data,omitempty"`
	// Records are the subject's data, for export.
	Records []Record `json:"records,omitempty"`
}

// Record is one record of an export answer: where the third party keeps
// it, and its fields.
type Record struct {
	Location string         `json:"location"`
	Fields   map[string]any `json:"fields"`
}

// Callback is what a third party posts to Lethe's callback,
// POST /v1/callbacks/{system}, signed like Lethe's own requests
// (SignatureHeader, with the system's shared secret), to acknowledge an
// erasure or a rectification it answered 202 to.
type Callback struct {
	RequestID string `json:"request_id"`
	Tenant    string `json:"tenant,omitempty"`
	Action    string `json:"action"` // erase or rectify
	Status    string `json:"status"` // done
	Count     *int64 `json:"count,omitempty"`
	HeldData  *bool  `json:"held_data,omitempty"`
}

// ReadCallback checks a third party's callback for system sys — signed
// with its secret within DefaultTolerance of now, a done callback naming a
// request — and returns the request's tenant and ID, and how much the
// third party held. Errors: ENOTFOUND for a system that takes no
// callbacks, EUNAUTHORIZED for a bad signature, EINVALID for a bad body
// (among them a negative count or a tenant that is not a tenant name); no
// error repeats a value of the body.
func ReadCallback(sys *datamap.System, signature string, body []byte, now time.Time) (tenant, requestID string, count int64, err error) {
	if sys == nil || sys.Kind != datamap.KindWebhook || sys.Webhook == nil || !sys.Webhook.Callback {
		return "", "", 0, lethe.Errorf(lethe.ENOTFOUND, "no system of that name takes callbacks")
	}
	secret, err := sys.Connection.Resolve()
	if err != nil {
		return "", "", 0, fmt.Errorf("system %s: %w", sys.Name, err)
	}
	if err := VerifySignature([]byte(secret), signature, body, now, 0); err != nil {
		return "", "", 0, lethe.Errorf(lethe.EUNAUTHORIZED, "the callback is not signed with system %s's secret, or too old", sys.Name)
	}
	var cb Callback
	if err := json.Unmarshal(body, &cb); err != nil || !lethe.ValidRequestID(cb.RequestID) || cb.Status != StatusDone {
		return "", "", 0, lethe.Errorf(lethe.EINVALID, "a callback is JSON with request_id, tenant, action and status done")
	}
	if cb.Count != nil {
		if *cb.Count < 0 {
			return "", "", 0, lethe.Errorf(lethe.EINVALID, "a callback's count is the number of records held, not negative")
		}
		count = *cb.Count
	}
	if cb.HeldData != nil && !*cb.HeldData {
		count = 0
	}
	tenant = cb.Tenant
	if tenant == "" {
		tenant = lethe.DefaultTenant
	} else if lethe.ValidTenant(tenant) != nil {
		return "", "", 0, lethe.Errorf(lethe.EINVALID, "a callback's tenant is a tenant name: 1 to 63 characters of a-z, 0-9, '_' and '-'")
	}
	return tenant, cb.RequestID, count, nil
}

// ErrPending is returned, wrapped, when a third party answers find or
// export with 202: it will answer later, through the callback, and there
// is nothing to report now.
var ErrPending = errors.New("the third party will answer later")

// Options are what Open needs beyond the data map.
type Options struct {
	// HTTPClient makes the calls. Nil means a client of Lethe's own, with
	// TLS certificate verification and the map's timeout.
	HTTPClient *http.Client
	// Now is the clock that signs; nil means time.Now.
	Now func() time.Time
}

// Conn is an open webhook system. It is safe for concurrent use; the
// caller must Close it.
type Conn struct {
	sys      *datamap.System
	url      string // to post to
	endpoint string // the URL without query or fragment, for reports
	secret   []byte
	client   *http.Client
	own      bool // client is ours to close
	timeout  time.Duration
	opts     Options
}

var (
	_ connector.Connector = (*Conn)(nil)
	_ connector.Exporter  = (*Conn)(nil)
	_ connector.Eraser    = (*Conn)(nil)
	_ connector.Rectifier = (*Conn)(nil)
)

// Open checks the system's URL and reads its secret. It sends nothing.
func Open(ctx context.Context, sys *datamap.System, opts Options) (*Conn, error) {
	w := sys.Webhook
	if w == nil {
		return nil, fmt.Errorf("system %s: no webhook in the data map", sys.Name)
	}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("system %s: webhook.url is not an absolute URL", sys.Name)
	case u.User != nil:
		return nil, fmt.Errorf("system %s: webhook.url must not hold credentials", sys.Name)
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("system %s: webhook.url must be https:// (http:// only to a loopback address)", sys.Name)
	}
	ref := sys.Connection
	if ref.Env == "" && ref.File == "" {
		return nil, fmt.Errorf("system %s: the webhook secret comes from connection env or file", sys.Name)
	}
	secret, err := ref.Resolve()
	if err != nil {
		return nil, fmt.Errorf("system %s: secret: %w", sys.Name, err)
	}
	c := &Conn{
		sys:     sys,
		url:     u.String(),
		secret:  []byte(secret),
		timeout: time.Duration(w.Timeout),
		opts:    opts,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	e := *u
	e.RawQuery, e.ForceQuery, e.Fragment, e.RawFragment = "", false, "", ""
	c.endpoint = e.String()

	var client http.Client
	if opts.HTTPClient != nil {
		client = *opts.HTTPClient
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		client = http.Client{Transport: t, Timeout: c.timeout}
		c.own = true
	}
	// A redirect would carry a signed body, with the subject's
	// identifiers, somewhere the map does not name.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &client
	return c, nil
}

// loopback reports whether host is this machine: localhost or a loopback
// IP address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close releases the idle connections of the client Open made; a client
// given in Options is the caller's.
func (c *Conn) Close() error {
	if c.own {
		c.client.CloseIdleConnections()
	}
	return nil
}

func (c *Conn) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

// answer is a third party's answer: pending for 202, else a done
// Response.
type answer struct {
	pending bool
	resp    Response
}

// post sends one request and reads the answer.
func (c *Conn) post(ctx context.Context, action string, s connector.Subject, values map[string]string) (answer, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("system %s: %s for subject %s: %s", c.sys.Name, action, s.ID, fmt.Sprintf(format, args...))
	}
	req := Request{
		Action:      action,
		System:      c.sys.Name,
		SubjectID:   s.ID,
		Identifiers: map[string]string{},
		Callback:    c.sys.Webhook.Callback,
		Values:      values,
	}
	for k, v := range s.Identifiers {
		if v != "" {
			req.Identifiers[k] = v
		}
	}
	// The request (connector.Subject.RequestID) goes in the body and the
	// idempotency key; without one, every call for one subject and action
	// has the same key.
	req.RequestID, req.Tenant = s.RequestID, s.Tenant
	body, err := json.Marshal(req)
	if err != nil {
		return answer{}, fail("encode request: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, fail("make request: %v", stripURL(err))
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "lethe")
	hr.Header.Set(SignatureHeader, Sign(c.secret, body, c.now()))
	hr.Header.Set("Idempotency-Key", IdempotencyKey(c.sys.Name, action, s.ID, req.RequestID))
	res, err := c.client.Do(hr)
	if err != nil {
		return answer{}, fmt.Errorf("system %s: %s for subject %s: post: %w", c.sys.Name, action, s.ID, stripURL(err))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxResponse+1))
	if err != nil {
		return answer{}, fmt.Errorf("system %s: %s for subject %s: read answer: %w", c.sys.Name, action, s.ID, stripURL(err))
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusAccepted:
		return answer{pending: true}, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return answer{}, fail("the third party answered HTTP %d (check the shared secret and the clock)", res.StatusCode)
	default:
		// Never the body: it may hold personal data.
		return answer{}, fail("the third party answered HTTP %d", res.StatusCode)
	}
	if len(data) > MaxResponse {
		return answer{}, fail("the answer is larger than %d bytes", MaxResponse)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var a answer
	// A decoding error can quote the body; say only that it did not parse.
	if err := dec.Decode(&a.resp); err != nil {
		return answer{}, fail("the answer is not the JSON of a response")
	}
	switch a.resp.Status {
	case StatusDone:
	case StatusAccepted:
		a.pending = true
		return a, nil
	default:
		return answer{}, fail("the answer's status is not %q or %q", StatusDone, StatusAccepted)
	}
	if a.resp.Count != nil && *a.resp.Count < 0 {
		return answer{}, fail("the answer's count is negative")
	}
	return a, nil
}

// count is what a done answer says of how many records there are.
func (a answer) count() (int64, bool) {
	if a.resp.HeldData != nil && !*a.resp.HeldData {
		return 0, true
	}
	if a.resp.Count != nil {
		return *a.resp.Count, true
	}
	return 0, false
}

// stripURL drops the URL a *url.Error quotes: its query may hold a token.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Conn) counted(action string, s connector.Subject, a answer) (int64, error) {
	n, ok := a.count()
	if !ok {
		return 0, fmt.Errorf("system %s: %s for subject %s: the answer has neither count nor held_data", c.sys.Name, action, s.ID)
	}
	return n, nil
}

// Find asks the third party how many records of the subject it holds.
// One Count, at the endpoint (the URL without its query). An answer of
// 202 is an error wrapping ErrPending.
func (c *Conn) Find(ctx context.Context, s connector.Subject) ([]connector.Count, error) {
	a, err := c.post(ctx, ActionFind, s, nil)
	if err != nil {
		return nil, err
	}
	if a.pending {
		return nil, fmt.Errorf("system %s: find for subject %s: %w", c.sys.Name, s.ID, ErrPending)
	}
	n, err := c.counted(ActionFind, s, a)
	if err != nil {
		return nil, err
	}
	return []connector.Count{{Location: c.endpoint, Count: n}}, nil
}

// Export asks the third party for the subject's records and writes each
// to out, at the location the third party gives (the endpoint if none),
// with its fields in name order. It returns a count per location, in the
// order first seen; the endpoint with 0 when there are no records. An
// answer of 202 is an error wrapping ErrPending.
func (c *Conn) Export(ctx context.Context, s connector.Subject, out connector.Sink) ([]connector.Count, error) {
	a, err := c.post(ctx, ActionExport, s, nil)
	if err != nil {
		return nil, err
	}
	if a.pending {
		return nil, fmt.Errorf("system %s: export for subject %s: %w", c.sys.Name, s.ID, ErrPending)
	}
	var counts []connector.Count
	at := map[string]int{}
	for _, r := range a.resp.Records {
		loc := r.Location
		if loc == "" {
			loc = c.endpoint
		}
		cols := make([]string, 0, len(r.Fields))
		for k := range r.Fields {
			cols = append(cols, k)
		}
		slices.Sort(cols)
		vals := make([]any, len(cols))
		for i, k := range cols {
			vals[i] = r.Fields[k]
		}
		if err := out.Record(loc, cols, vals); err != nil {
			return nil, fmt.Errorf("system %s: export for subject %s: %w", c.sys.Name, s.ID, err)
		}
		i, ok := at[loc]
		if !ok {
			i = len(counts)
			at[loc] = i
			counts = append(counts, connector.Count{Location: loc})
		}
		counts[i].Count++
	}
	if len(counts) == 0 {
		counts = []connector.Count{{Location: c.endpoint, Count: 0}}
	}
	return counts, nil
}

// step is the one step of an erasure or a rectification.
func (c *Conn) step(action string, n int64) connector.Step {
	return connector.Step{Location: c.endpoint, Action: connector.ActionNotify, Statement: "POST " + c.endpoint + " " + action, Count: n}
}

// PlanErase says Erase would ask the third party to erase: one notify
// step, counted 1 (one request). It sends nothing.
func (c *Conn) PlanErase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	return connector.Report{System: c.sys.Name, Steps: []connector.Step{c.step(ActionErase, 1)}, At: c.now().UTC()}, nil
}

// Erase asks the third party to erase the subject's data: one notify step
// counting the records it says it erased, or a Pending report with count
// 0 if it answers 202. Idempotency is the third party's: asked again, it
// holds nothing and says 0.
func (c *Conn) Erase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	return c.change(ctx, ActionErase, s, nil)
}

// Rectify sends the corrected values, by data category, to the third
// party: one notify step whose columns are the categories, counting the
// records it says it corrected, or a Pending report if it answers 202.
func (c *Conn) Rectify(ctx context.Context, s connector.Subject, values map[string]string) (connector.Report, error) {
	if len(values) == 0 {
		return connector.Report{}, fmt.Errorf("system %s: rectify for subject %s: no values", c.sys.Name, s.ID)
	}
	return c.change(ctx, ActionRectify, s, values)
}

func (c *Conn) change(ctx context.Context, action string, s connector.Subject, values map[string]string) (connector.Report, error) {
	a, err := c.post(ctx, action, s, values)
	if err != nil {
		return connector.Report{}, err
	}
	st := c.step(action, 0)
	if values != nil {
		for k := range values {
			st.Columns = append(st.Columns, k)
		}
		slices.Sort(st.Columns)
	}
	r := connector.Report{System: c.sys.Name, Pending: a.pending}
	if !a.pending {
		if st.Count, err = c.counted(action, s, a); err != nil {
			return connector.Report{}, err
		}
	}
	r.Steps = []connector.Step{st}
	r.At = c.now().UTC()
	return r, nil
}
