package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/mail"
)

// Requests is what the API needs of the data-subject request service.
type Requests interface {
	Create(ctx context.Context, a lethe.Actor, tenant string, in lethe.RequestAsk) (*lethe.Request, error)
	Verify(ctx context.Context, tenant, id, code string) (*lethe.Request, error)
	ResendCode(ctx context.Context, tenant, id string) error
	Approve(ctx context.Context, a lethe.Actor, tenant, id string) (*lethe.Request, error)
	Retry(ctx context.Context, a lethe.Actor, tenant, id string) (*lethe.Request, error)
	Acknowledge(ctx context.Context, a lethe.Actor, tenant, id, system string, count int64, note string) (*lethe.Request, error)
	Callback(ctx context.Context, system, signature string, body []byte) error
	Download(ctx context.Context, link string) ([]byte, error)
	Extend(ctx context.Context, a lethe.Actor, tenant, id string, until time.Time, reason string) (*lethe.Request, error)
	Close(ctx context.Context, a lethe.Actor, tenant, id string, state lethe.RequestState, reason string) (*lethe.Request, error)
	Request(ctx context.Context, tenant, id string) (*lethe.Request, error)
	Tasks(ctx context.Context, id string) ([]lethe.RequestTask, error)
	List(ctx context.Context, f lethe.RequestFilter) ([]lethe.Request, error)
}

// requestRoutes are the data-subject request routes: staff's, and the
// person's own (public: the code sent to them proves who they are).
func (s *Server) requestRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/v1/requests", Permission: lethe.PermRequestsCreate, Summary: "Record a data-subject request (access, portability, rectification, erasure, restriction, objection) on a person's behalf; a code goes to the contact unless verified is set; a duplicate of an open request returns that one", Request: lethe.RequestAsk{}, Response: requestView{}, Status: 201, Errors: []int{400, 413, 415, 429}, handle: s.createRequest},
		{Method: "GET", Path: "/v1/requests", Permission: lethe.PermRequestsRead, Summary: "List requests by due date: state=… (repeatable), due_before=RFC3339 (overdue and due-soon lists), subject=, limit=, after_due= and after= to page", Response: requestList{}, Status: 200, Errors: []int{400}, handle: s.listRequests},
		{Method: "GET", Path: "/v1/requests/{id}", Permission: lethe.PermRequestsRead, Summary: "A request and the progress of its task per system", Response: requestView{}, Status: 200, Errors: []int{400, 404}, handle: s.getRequest},
		{Method: "POST", Path: "/v1/requests/{id}/approve", Permission: lethe.PermRequestsManage, Summary: "Approve a verified request that policy holds for approval", Response: requestView{}, Status: 200, Errors: []int{400, 404, 409}, handle: requestAction(s, func(ctx context.Context, a lethe.Actor, tenant, id string, _ *struct{}) (*lethe.Request, error) {
			return s.requests.Approve(ctx, a, tenant, id)
		})},
		{Method: "POST", Path: "/v1/requests/{id}/retry", Permission: lethe.PermRequestsManage, Summary: "Run again the systems a partially completed request has not finished (after a system's job gave up)", Response: requestView{}, Status: 200, Errors: []int{400, 404, 409}, handle: requestAction(s, func(ctx context.Context, a lethe.Actor, tenant, id string, _ *struct{}) (*lethe.Request, error) {
			return s.requests.Retry(ctx, a, tenant, id)
		})},
		{Method: "POST", Path: "/v1/requests/{id}/extend", Permission: lethe.PermRequestsManage, Summary: "Extend a request's due date, by at most two months in all, with the reason the person is told (Art. 12(3))", Request: extendRequest{}, Response: requestView{}, Status: 200, Errors: []int{400, 404, 409, 413, 415}, handle: requestAction(s, func(ctx context.Context, a lethe.Actor, tenant, id string, in *extendRequest) (*lethe.Request, error) {
			return s.requests.Extend(ctx, a, tenant, id, in.Until, in.Reason)
		})},
		{Method: "POST", Path: "/v1/requests/{id}/close", Permission: lethe.PermRequestsManage, Summary: "Reject or cancel an open request, with a reason", Request: closeRequest{}, Response: requestView{}, Status: 200, Errors: []int{400, 404, 409, 413, 415}, handle: requestAction(s, func(ctx context.Context, a lethe.Actor, tenant, id string, in *closeRequest) (*lethe.Request, error) {
			return s.requests.Close(ctx, a, tenant, id, in.State, in.Reason)
		})},
		{Method: "POST", Path: "/v1/requests/{id}/systems/{system}/done", Permission: lethe.PermRequestsManage, Summary: "Close a system's part of a request that waits for a person (a manual checklist) or a third party, with how much it held", Request: acknowledgeRequest{}, Response: requestView{}, Status: 200, Errors: []int{400, 404, 409, 413, 415}, handle: requestAction(s, func(ctx context.Context, a lethe.Actor, tenant, id string, in *acknowledgeRequest) (*lethe.Request, error) {
			return s.requests.Acknowledge(ctx, a, tenant, id, in.system, in.Count, in.Note)
		})},
		{Method: "POST", Path: "/v1/callbacks/{system}", Permission: lethe.PermPublic, Summary: "A third party's acknowledgement of its part of a request, signed with the system's shared secret (Lethe-Signature, as Lethe signs its own calls)", Status: 204, Errors: []int{400, 401, 404, 409, 413}, handle: s.callback},
		{Method: "GET", Path: "/v1/self/downloads/{link}", Permission: lethe.PermPublic, Summary: "A person's access archive (a zip: their data from every system, JSON and CSV, and what is done with it), through the one-time link mailed to them", Status: 200, Errors: []int{404, 429}, handle: s.selfDownload},
		{Method: "POST", Path: "/v1/self/requests", Permission: lethe.PermPublic, Summary: "A person's own request: a code goes to the address given; the answer is the same whether or not anything is held on the person", Request: selfAsk{}, Response: selfView{}, Status: 202, Errors: []int{400, 413, 415, 429}, handle: s.selfCreateRequest},
		{Method: "POST", Path: "/v1/self/requests/{id}/verify", Permission: lethe.PermPublic, Summary: "Confirm one's own request with the code sent for it (five tries per code)", Request: selfVerify{}, Response: selfView{}, Status: 200, Errors: []int{400, 403, 409, 413, 415, 429}, handle: s.selfVerifyRequest},
		{Method: "POST", Path: "/v1/self/requests/{id}/code", Permission: lethe.PermPublic, Summary: "Send a new code for one's own request (three per request)", Request: selfVerify{}, Response: selfView{}, Status: 202, Errors: []int{400, 413, 415, 429}, handle: s.selfResendCode},
	}
}

type requestView struct {
	lethe.Request
	Tasks []lethe.RequestTask `json:"tasks,omitempty"`
}

type requestList struct {
	Requests []lethe.Request `json:"requests"`
}

func (s *Server) createRequest(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var in lethe.RequestAsk
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	req, err := s.requests.Create(r.Context(), a, tenant, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, requestView{Request: *req})
	return nil
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request) error {
	_, tenant, err := actor(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := lethe.RequestFilter{Tenant: tenant, SubjectID: q.Get("subject"), AfterID: q.Get("after")}
	for _, st := range q["state"] {
		f.States = append(f.States, lethe.RequestState(st))
	}
	if v := q.Get("due_before"); v != "" {
		if f.DueBefore, err = time.Parse(time.RFC3339, v); err != nil {
			return lethe.Errorf(lethe.EINVALID, "due_before must be an RFC 3339 time")
		}
	}
	if v := q.Get("after_due"); v != "" {
		if f.AfterDue, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return lethe.Errorf(lethe.EINVALID, "after_due must be an RFC 3339 time")
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil {
			return lethe.Errorf(lethe.EINVALID, "limit must be a whole number")
		}
	}
	list, err := s.requests.List(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, requestList{Requests: list})
	return nil
}

// requestOf reads the request the path names, in the caller's tenant.
func (s *Server) requestOf(r *http.Request) (lethe.Actor, string, string, error) {
	a, tenant, err := actor(r)
	if err != nil {
		return a, "", "", err
	}
	id := r.PathValue("id")
	if !lethe.ValidRequestID(id) {
		return a, "", "", lethe.Errorf(lethe.EINVALID, "a request ID is req_ and 26 characters")
	}
	return a, tenant, id, nil
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request) error {
	_, tenant, id, err := s.requestOf(r)
	if err != nil {
		return err
	}
	req, err := s.requests.Request(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	tasks, err := s.requests.Tasks(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, requestView{Request: *req, Tasks: tasks})
	return nil
}

type acknowledgeRequest struct {
	Count  int64  `json:"count"` // records the system held (and erased, or corrected)
	Note   string `json:"note,omitempty"`
	system string // from the path
}

// pathSetter is a request body that takes a value from the path too.
type pathSetter interface{ fromPath(r *http.Request) }

func (a *acknowledgeRequest) fromPath(r *http.Request) { a.system = r.PathValue("system") }

// requestAction is the handler of a staff action on the request the path
// names: it decodes the body into T (none for struct{}), acts, and answers
// with the request as it then stands.
func requestAction[T any](s *Server, act func(ctx context.Context, a lethe.Actor, tenant, id string, in *T) (*lethe.Request, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, tenant, id, err := s.requestOf(r)
		if err != nil {
			return err
		}
		var in T
		if _, none := any(in).(struct{}); !none {
			if err := decodeJSON(r, &in); err != nil {
				return err
			}
		}
		if p, ok := any(&in).(pathSetter); ok {
			p.fromPath(r)
		}
		req, err := act(r.Context(), a, tenant, id, &in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, requestView{Request: *req})
		return nil
	}
}

// callback takes a third party's signed acknowledgement. The body is read
// whole, as signed; the signature, not a key, authenticates the caller.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return lethe.Errorf(lethe.ETOOLARGE, "the callback body is too large")
	}
	if err := s.requests.Callback(r.Context(), r.PathValue("system"), r.Header.Get("Lethe-Signature"), body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type extendRequest struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

type closeRequest struct {
	State  lethe.RequestState `json:"state"` // rejected or cancelled
	Reason string             `json:"reason"`
}

// The self-service routes answer a person without credentials: what they
// return and what is sent is the same whether or not Lethe holds anything
// on the person, so they reveal nothing; each client address may call them
// a few times a minute.

type selfAsk struct {
	Tenant  string            `json:"tenant,omitempty"`
	Type    lethe.RequestType `json:"type"`
	Contact string            `json:"contact"`
	Purpose string            `json:"purpose,omitempty"`
	Values  map[string]string `json:"values,omitempty"`
	// Passphrase, for access and portability, encrypts the archive to it
	// (age): 12 to 1024 bytes.
	Passphrase string `json:"passphrase,omitempty"`
}

// selfView is all a person is told of their request.
type selfView struct {
	ID      string             `json:"id"`
	State   lethe.RequestState `json:"state"`
	DueAt   time.Time          `json:"due_at"`
	Message string             `json:"message"`
}

const codeSent = "If the address can receive mail, a code was sent to it. Enter it to confirm the request; it is valid for 15 minutes."

// selfLimit refuses a caller address that called the self-service routes
// too often.
func (s *Server) selfLimit(r *http.Request) error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return limited(s.selfLimits, s.limitKey("client", host), s.now())
}

// limited takes a token of key from l, or says when to retry, in the same
// words whichever limit it is: which one ran out tells nothing.
func limited(l *limiter, key string, now time.Time) error {
	if ok, retry := l.allow(key, now); !ok {
		return lethe.Errorf(lethe.ERATELIMIT, "too many requests; retry after %d s", retry)
	}
	return nil
}

// limitKey is the key a rate limit keeps for a value (a client address, a
// contact address): a hash under a salt of this process's, never the
// value.
func (s *Server) limitKey(kind, value string) string {
	h := sha256.New()
	h.Write(s.limitSalt)
	h.Write([]byte(kind + "\x00" + value))
	return string(h.Sum(nil))
}

func (s *Server) selfCreateRequest(w http.ResponseWriter, r *http.Request) error {
	if err := s.selfLimit(r); err != nil {
		return err
	}
	var in selfAsk
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	tenant := in.Tenant
	if tenant == "" {
		tenant = lethe.DefaultTenant
	}
	// The contact's limit counts the asks that would send it a code: an
	// ask Create refuses with 400 sends nothing, and must not use up the
	// budget of an address (anyone may write anyone's address), so the
	// type and address are checked as Create checks them first.
	if slices.Contains(lethe.RequestTypes, in.Type) && mail.Validate(strings.TrimSpace(in.Contact)) == nil {
		if err := limited(s.contactLimits, s.limitKey("contact", tenant+"\x00"+strings.ToLower(strings.TrimSpace(in.Contact))), s.now()); err != nil {
			return err
		}
	}
	req, err := s.requests.Create(r.Context(), lethe.RequestSelf, tenant, lethe.RequestAsk{Type: in.Type, Contact: in.Contact, Purpose: in.Purpose, Values: in.Values, Passphrase: in.Passphrase})
	if lethe.ErrorCode(err) == lethe.ERATELIMIT {
		// Too many codes for an open request: the same answer as a
		// success, so that it tells nothing either.
		err = nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, selfView{ID: req.ID, State: lethe.RequestReceived, DueAt: req.DueAt, Message: codeSent})
	return nil
}

type selfVerify struct {
	Tenant string `json:"tenant,omitempty"`
	Code   string `json:"code"`
}

func (s *Server) selfVerifyRequest(w http.ResponseWriter, r *http.Request) error {
	if err := s.selfLimit(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	var in selfVerify
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if !lethe.ValidRequestID(id) || len(in.Code) != 8 || strings.Trim(in.Code, "0123456789") != "" {
		return lethe.Errorf(lethe.EFORBIDDEN, "the code is eight digits, from the message sent for this request")
	}
	tenant := in.Tenant
	if tenant == "" {
		tenant = lethe.DefaultTenant
	}
	req, err := s.requests.Verify(r.Context(), tenant, id, in.Code)
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		err = lethe.Errorf(lethe.EFORBIDDEN, "request %s has no valid code; ask for a new one", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, selfView{ID: req.ID, State: req.State, DueAt: req.DueAt, Message: "Confirmed. The answer will be sent to the same address by " + req.DueAt.Format("2 January 2006") + "."})
	return nil
}

// ageHeader is the first line of every file in age's format, version 1
// (https://age-encryption.org/v1): an archive encrypted to the person's
// passphrase begins with it. It belongs to age, not to the request
// service, and is declared here so that the API does not import the
// service it reaches through Requests.
const ageHeader = "age-encryption.org/v1\n"

func (s *Server) selfDownload(w http.ResponseWriter, r *http.Request) error {
	if err := s.selfLimit(r); err != nil {
		return err
	}
	archive, err := s.requests.Download(r.Context(), r.PathValue("link"))
	if err != nil {
		return err
	}
	// An archive encrypted to the person's passphrase says so itself.
	if bytes.HasPrefix(archive, []byte(ageHeader)) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="personal-data.zip.age"`)
	} else {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", `attachment; filename="personal-data.zip"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(archive)
	return err
}

func (s *Server) selfResendCode(w http.ResponseWriter, r *http.Request) error {
	if err := s.selfLimit(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	var in selfVerify
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	tenant := in.Tenant
	if tenant == "" {
		tenant = lethe.DefaultTenant
	}
	if lethe.ValidRequestID(id) {
		err := s.requests.ResendCode(r.Context(), tenant, id)
		if code := lethe.ErrorCode(err); err != nil && code != lethe.ENOTFOUND && code != lethe.ERATELIMIT {
			return err
		}
	}
	// The same answer whatever happened: it tells nothing.
	writeJSON(w, http.StatusAccepted, selfView{ID: id, State: lethe.RequestReceived, Message: codeSent})
	return nil
}
