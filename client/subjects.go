package client

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// CreateSubject stores a new subject with identifiers (kind → value, such
// as "email" → "jane@example.com") and a profile (a JSON object).
func (c *Client) CreateSubject(ctx context.Context, identifiers map[string]string, profile any) (*lethe.SubjectView, error) {
	in := struct {
		Identifiers map[string]string `json:"identifiers"`
		Profile     any               `json:"profile,omitempty"`
	}{identifiers, profile}
	var s lethe.SubjectView
	return &s, c.do(ctx, "POST", "/v1/subjects", in, &s)
}

// ReadOptions narrow a read: Fields selects identifier kinds and profile
// fields (nil: all); Masked asks for masked values.
type ReadOptions struct {
	Fields []string
	Masked bool
}

// LookupSubject finds a subject by an identifier and reads it. The value
// travels in the request body, never in the URL.
func (c *Client) LookupSubject(ctx context.Context, kind, value string, o ReadOptions) (*lethe.SubjectView, error) {
	in := struct {
		Kind   string   `json:"kind"`
		Value  string   `json:"value"`
		Fields []string `json:"fields,omitempty"`
		Masked bool     `json:"masked,omitempty"`
	}{kind, value, o.Fields, o.Masked}
	var s lethe.SubjectView
	return &s, c.do(ctx, "POST", "/v1/subjects/lookup", in, &s)
}

// ReadSubject reads a subject by ID.
func (c *Client) ReadSubject(ctx context.Context, id string, o ReadOptions) (*lethe.SubjectView, error) {
	q := url.Values{}
	if o.Fields != nil {
		q.Set("fields", strings.Join(o.Fields, ","))
	}
	if o.Masked {
		q.Set("masked", "true")
	}
	path := "/v1/subjects/" + url.PathEscape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var s lethe.SubjectView
	return &s, c.do(ctx, "GET", path, nil, &s)
}

// Change is a rectification: Profile is a JSON merge patch (RFC 7396);
// Identifiers maps a kind to its new value, or to nil to remove it.
type Change struct {
	Profile     any                `json:"profile,omitempty"`
	Identifiers map[string]*string `json:"identifiers,omitempty"`
	Reason      string             `json:"reason"`
}

// UpdateSubject rectifies a subject and returns it as it now stands.
func (c *Client) UpdateSubject(ctx context.Context, id string, ch Change) (*lethe.SubjectView, error) {
	var s lethe.SubjectView
	return &s, c.do(ctx, "PATCH", "/v1/subjects/"+url.PathEscape(id), ch, &s)
}

// History returns every version of a subject's record, oldest first.
func (c *Client) History(ctx context.Context, id string) ([]lethe.HistoryEntry, error) {
	var out struct {
		Versions []lethe.HistoryEntry `json:"versions"`
	}
	return out.Versions, c.do(ctx, "GET", "/v1/subjects/"+url.PathEscape(id)+"/history", nil, &out)
}

// Erasure is the vault's answer to an erasure.
type Erasure struct {
	SubjectID string    `json:"subject_id,omitempty"`
	Tenant    string    `json:"tenant"`
	ErasedAt  time.Time `json:"erased_at"`
}

// EraseSubject erases a subject: its key is destroyed, then its data
// deleted. Later reads fail with status 410 (code "gone").
func (c *Client) EraseSubject(ctx context.Context, id string) (*Erasure, error) {
	var e Erasure
	return &e, c.do(ctx, "DELETE", "/v1/subjects/"+url.PathEscape(id), nil, &e)
}

// EraseTenant erases a whole tenant: every subject of it, at once.
func (c *Client) EraseTenant(ctx context.Context, tenant string) (*Erasure, error) {
	var e Erasure
	in := struct {
		Confirm string `json:"confirm"`
	}{tenant}
	return &e, c.do(ctx, "DELETE", "/v1/tenants/"+url.PathEscape(tenant), in, &e)
}
