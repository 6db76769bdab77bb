package request

import (
	"context"

	"github.com/lethe-privacy/lethe"
)

// AD is ad, for tests that open what the service sealed.
var AD = ad

// Deliver is deliver, for tests of a finish run again.
func (r *Runner) Deliver(ctx context.Context, req *lethe.Request, systems []string) error {
	return r.deliver(ctx, req, systems)
}
