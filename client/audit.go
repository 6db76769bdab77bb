package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/lethe-privacy/lethe"
)

// AuditEvents returns one page of a subject's audit events, starting at log
// index after, each with an inclusion proof against the bundle's signed
// checkpoint. limit is 1 to 1000 (0 for the server's default of 100);
// Next in the answer is the after of the next page. Needs the dpo or
// auditor role.
func (c *Client) AuditEvents(ctx context.Context, subjectID string, after uint64, limit int) (*lethe.AuditBundle, error) {
	q := url.Values{"subject": {subjectID}}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var b lethe.AuditBundle
	return &b, c.do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &b)
}
