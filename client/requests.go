package client

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
)

// RequestView is a request with the progress of its task per system.
type RequestView struct {
	lethe.Request
	Tasks []lethe.RequestTask `json:"tasks,omitempty"`
}

// CreateRequest records a data-subject request on a person's behalf. A
// duplicate of an open request returns that one.
func (c *Client) CreateRequest(ctx context.Context, in lethe.RequestAsk) (*RequestView, error) {
	var v RequestView
	return &v, c.do(ctx, "POST", "/v1/requests", in, &v)
}

// ListRequests lists requests by due date.
func (c *Client) ListRequests(ctx context.Context, f lethe.RequestFilter) ([]lethe.Request, error) {
	q := url.Values{}
	for _, s := range f.States {
		q.Add("state", string(s))
	}
	if !f.DueBefore.IsZero() {
		q.Set("due_before", f.DueBefore.UTC().Format(time.RFC3339))
	}
	if f.SubjectID != "" {
		q.Set("subject", f.SubjectID)
	}
	if f.AfterID != "" {
		q.Set("after", f.AfterID)
		q.Set("after_due", f.AfterDue.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct {
		Requests []lethe.Request `json:"requests"`
	}
	return out.Requests, c.do(ctx, "GET", "/v1/requests?"+q.Encode(), nil, &out)
}

// Request reads one request and its tasks.
func (c *Client) Request(ctx context.Context, id string) (*RequestView, error) {
	var v RequestView
	return &v, c.do(ctx, "GET", "/v1/requests/"+url.PathEscape(id), nil, &v)
}

// ApproveRequest approves a request awaiting approval.
func (c *Client) ApproveRequest(ctx context.Context, id string) (*RequestView, error) {
	var v RequestView
	return &v, c.do(ctx, "POST", "/v1/requests/"+url.PathEscape(id)+"/approve", nil, &v)
}

// RetryRequest runs again the unfinished systems of a partially completed
// request.
func (c *Client) RetryRequest(ctx context.Context, id string) (*RequestView, error) {
	var v RequestView
	return &v, c.do(ctx, "POST", "/v1/requests/"+url.PathEscape(id)+"/retry", nil, &v)
}

// AcknowledgeSystem closes a system's part of a request that waits for a
// person or a third party, with how much it held.
func (c *Client) AcknowledgeSystem(ctx context.Context, id, system string, count int64, note string) (*RequestView, error) {
	in := struct {
		Count int64  `json:"count"`
		Note  string `json:"note,omitempty"`
	}{count, note}
	var v RequestView
	return &v, c.do(ctx, "POST", "/v1/requests/"+url.PathEscape(id)+"/systems/"+url.PathEscape(system)+"/done", in, &v)
}

// ExtendRequest moves a request's due date, with the reason.
func (c *Client) ExtendRequest(ctx context.Context, id string, until time.Time, reason string) (*RequestView, error) {
	in := struct {
		Until  time.Time `json:"until"`
		Reason string    `json:"reason"`
	}{until, reason}
	var v RequestView
	return &v, c.do(ctx, "POST", "/v1/requests/"+url.PathEscape(id)+"/extend", in, &v)
}

// CloseRequest rejects or cancels a request, with the reason.
func (c *Client) CloseRequest(ctx context.Context, id string, state lethe.RequestState, reason string) (*RequestView, error) {
	in := struct {
		State  lethe.RequestState `json:"state"`
		Reason string             `json:"reason"`
	}{state, reason}
	var v RequestView
	return &v, c.do(ctx, "POST", "/v1/requests/"+url.PathEscape(id)+"/close", in, &v)
}
