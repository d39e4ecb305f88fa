package ingest

import (
	"math/rand/v2"
	"time"
)

// backoff is the reconnect delay of one source: exponential from min to
// max, jittered so that many cameras behind one failed link do not
// reconnect in lockstep, and reset once a session has been stable.
type backoff struct {
	min, max time.Duration
	attempt  int
	// rand returns a value in [0, 1); injected by tests.
	rand func() float64
}

func newBackoff(minDelay, maxDelay time.Duration) *backoff {
	return &backoff{min: minDelay, max: maxDelay, rand: rand.Float64}
}

// next returns the delay before the next attempt and counts the attempt.
// The n-th delay (0-based) lies in [d/2, d] with d = min·2ⁿ capped at max,
// and never below min nor above max.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if b.attempt < 62 {
		b.attempt++
	}
	j := d/2 + time.Duration(b.rand()*float64(d/2))
	return min(max(j, b.min), b.max)
}

// reset starts the sequence over, after a stable session.
func (b *backoff) reset() { b.attempt = 0 }

// retryDelay returns the wait after a session whose media flowed for
// online: a stable session (online at least stableAfter) starts the backoff
// over.
func retryDelay(b *backoff, online, stableAfter time.Duration) time.Duration {
	if online >= stableAfter {
		b.reset()
	}
	return b.next()
}
