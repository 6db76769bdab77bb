package jobs

import (
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

var _ river.ClientRetryPolicy = (*Backoff)(nil)

// Backoff is a retry policy: exponential backoff with jitter, capped. After
// a job's nth failure it runs again after Base·2ⁿ⁻¹, at most Max, give or
// take 10% so that jobs that failed together do not all retry together.
// Failures are counted by the errors recorded on the job, so a snooze does
// not lengthen the backoff. It is safe for concurrent use.
type Backoff struct {
	Base time.Duration // the delay after the first failure; must be positive
	Max  time.Duration // the longest delay; must be at least Base

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Delay returns the delay, before jitter, after the nth failure (n ≥ 1).
func (b *Backoff) Delay(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		if d > b.Max/2 {
			return b.Max // and never overflow
		}
		d *= 2
	}
	return min(d, b.Max)
}

// NextRetry returns when job, which has just failed, runs again.
func (b *Backoff) NextRetry(job *rivertype.JobRow) time.Time {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	d := b.Delay(len(job.Errors) + 1)
	// math/rand is enough: the jitter spreads load and hides nothing.
	d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return now().Add(d)
}
