package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// Subject is a subject as the vault returns it. Values are personal data:
// keep them out of logs.
type Subject struct {
	ID          string            `json:"id"`
	Tenant      string            `json:"tenant"`
	CreatedAt   time.Time         `json:"created_at"`
	Version     int               `json:"version"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Identifiers map[string]string `json:"identifiers"`
	Profile     json.RawMessage   `json:"profile"`
}

// CreateSubject stores a new subject with identifiers (kind → value, such
// as "email" → "jane@example.com") and a profile (a JSON object).
func (c *Client) CreateSubject(ctx context.Context, identifiers map[string]string, profile any) (*Subject, error) {
	in := struct {
		Identifiers map[string]string `json:"identifiers"`
		Profile     any               `json:"profile,omitempty"`
	}{identifiers, profile}
	var s Subject
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
func (c *Client) LookupSubject(ctx context.Context, kind, value string, o ReadOptions) (*Subject, error) {
	in := struct {
		Kind   string   `json:"kind"`
		Value  string   `json:"value"`
		Fields []string `json:"fields,omitempty"`
		Masked bool     `json:"masked,omitempty"`
	}{kind, value, o.Fields, o.Masked}
	var s Subject
	return &s, c.do(ctx, "POST", "/v1/subjects/lookup", in, &s)
}

// ReadSubject reads a subject by ID.
func (c *Client) ReadSubject(ctx context.Context, id string, o ReadOptions) (*Subject, error) {
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
	var s Subject
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
func (c *Client) UpdateSubject(ctx context.Context, id string, ch Change) (*Subject, error) {
	var s Subject
	return &s, c.do(ctx, "PATCH", "/v1/subjects/"+url.PathEscape(id), ch, &s)
}

// Version is one version of a subject's record.
type Version struct {
	Version   int             `json:"version"`
	Principal string          `json:"principal"`
	CreatedAt time.Time       `json:"created_at"`
	Reason    string          `json:"reason,omitempty"`
	Profile   json.RawMessage `json:"profile"`
}

// History returns every version of a subject's record, oldest first.
func (c *Client) History(ctx context.Context, id string) ([]Version, error) {
	var out struct {
		Versions []Version `json:"versions"`
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
