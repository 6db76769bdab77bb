package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/lethe-privacy/lethe"
)

// Purposes returns the deployment's declared purposes.
func (c *Client) Purposes(ctx context.Context) ([]lethe.Purpose, error) {
	var out struct {
		Purposes []lethe.Purpose `json:"purposes"`
	}
	return out.Purposes, c.do(ctx, "GET", "/v1/purposes", nil, &out)
}

// RecordConsent records consents, withdrawals, restrictions and
// objections, all or none, and returns them as stored, with their ledger
// revisions.
func (c *Client) RecordConsent(ctx context.Context, recs []lethe.ConsentRecord) ([]lethe.ConsentEvent, error) {
	in := struct {
		Records []lethe.ConsentRecord `json:"records"`
	}{recs}
	var out struct {
		Events []lethe.ConsentEvent `json:"events"`
	}
	return out.Events, c.do(ctx, "POST", "/v1/consent", in, &out)
}

// CheckConsent asks the server whether the subject may be processed for
// the purpose, at a ledger revision no older than minRevision (0: any).
// ConsentCache answers the same question from memory.
func (c *Client) CheckConsent(ctx context.Context, subjectID, purpose string, minRevision uint64) (lethe.ConsentDecision, error) {
	q := url.Values{"subject": {subjectID}, "purpose": {purpose}}
	if minRevision > 0 {
		q.Set("min_revision", strconv.FormatUint(minRevision, 10))
	}
	var d lethe.ConsentDecision
	return d, c.do(ctx, "GET", "/v1/consent/check?"+q.Encode(), nil, &d)
}

// CheckConsentBatch filters up to 100,000 subjects for a purpose.
func (c *Client) CheckConsentBatch(ctx context.Context, purpose string, subjectIDs []string, minRevision uint64) (*lethe.BatchDecision, error) {
	in := struct {
		Purpose     string   `json:"purpose"`
		Subjects    []string `json:"subjects"`
		MinRevision uint64   `json:"min_revision,omitempty"`
	}{purpose, subjectIDs, minRevision}
	var b lethe.BatchDecision
	return &b, c.do(ctx, "POST", "/v1/consent/check", in, &b)
}

// ConsentHistory returns a subject's consent ledger, oldest first.
func (c *Client) ConsentHistory(ctx context.Context, subjectID string) ([]lethe.ConsentEvent, error) {
	var out struct {
		Events []lethe.ConsentEvent `json:"events"`
	}
	return out.Events, c.do(ctx, "GET", "/v1/subjects/"+url.PathEscape(subjectID)+"/consent", nil, &out)
}
