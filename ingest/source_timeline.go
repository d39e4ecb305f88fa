package ingest

import "time"

// Limits of what counts as a broken timeline.
const (
	// seqMaxGap is the largest forward jump of RTP sequence numbers taken
	// as packet loss; a larger one is a discontinuity (after probation).
	seqMaxGap = 1000
	// seqMaxMisorder is how far back a sequence number may be and still be
	// taken as a late or duplicate packet rather than a restart.
	seqMaxMisorder = 100
	// jumpTolerance is how much further an RTP timestamp may advance than
	// the receive clock between two units of a track, or how far it may go
	// back (B-frames go back a few frames), before it counts as a jump.
	jumpTolerance = 3 * time.Second
	// reanchorGrace: a track that jumps this soon after a run opened by a
	// timestamp jump is re-anchored instead of breaking the run again (the
	// other tracks of a camera jump with the one that broke the run, a
	// little later).
	reanchorGrace = 2 * time.Second
)

// seqVerdict is what the sequence tracker says about a packet.
type seqVerdict int

const (
	seqOK    seqVerdict = iota // next in order, or after lost packets
	seqStale                   // duplicate, late, or a jump on probation: drop it
	seqJump                    // a confirmed jump of the sequence: discontinuity
)

// seqTracker follows the RTP sequence numbers of one track, in the manner
// of RFC 3550 appendix A.1: a large jump is believed only when the packet
// after it follows on, so that one stray packet does not break the
// timeline.
type seqTracker struct {
	started   bool
	last      uint16
	probation bool
	badSeq    uint16
}

// update judges seq and returns how many packets went missing before it.
func (t *seqTracker) update(seq uint16) (seqVerdict, int) {
	if !t.started {
		t.started, t.last = true, seq
		return seqOK, 0
	}
	delta := seq - t.last
	switch {
	case delta == 0:
		return seqStale, 0
	case delta <= seqMaxGap:
		t.last, t.probation = seq, false
		return seqOK, int(delta) - 1
	case delta >= 1<<16-seqMaxMisorder:
		return seqStale, 0
	case t.probation && seq == t.badSeq:
		t.last, t.probation = seq, false
		return seqJump, 0
	default:
		t.probation, t.badSeq = true, seq+1
		return seqStale, 0
	}
}

// trackClock follows the RTP timestamps of one track.
//
// Over the session it keeps an extended (unwrapped) timestamp and the
// track's origin: the least receive delay seen, as the local time at which
// extended timestamp zero would have arrived. The ideal receive time of a
// unit is origin + its media time; using it rather than the receive time
// keeps network and scheduling jitter out of the alignment of tracks.
//
// Within a run, PTS = extended timestamp + an offset fixed when the track's
// first unit of the run came: zero for the video keyframe that opens the
// run, and the distance between ideal receive times for the other tracks.
type trackClock struct {
	rate int64 // ticks per second

	// session timeline
	seen    bool
	lastTS  uint32
	ext     int64
	lastRcv time.Time
	origin  time.Time

	// run
	started bool
	ptsOff  int64
}

// observe takes the timestamp of a new unit. It reports a jump when ts ran
// ahead of the receive clock, or went back, by more than jumpTolerance;
// the track's timeline then restarts at this unit.
func (c *trackClock) observe(ts uint32, rcv time.Time) (jump bool) {
	if !c.seen {
		c.restart(ts, rcv)
		return false
	}
	d := int64(int32(ts - c.lastTS))
	media := ticksDuration(d, c.rate)
	wall := rcv.Sub(c.lastRcv)
	if media > wall+jumpTolerance || media < -jumpTolerance {
		c.restart(ts, rcv)
		return true
	}
	c.ext += d
	c.lastTS, c.lastRcv = ts, rcv
	if o := rcv.Add(-ticksDuration(c.ext, c.rate)); o.Before(c.origin) {
		c.origin = o
	}
	return false
}

func (c *trackClock) restart(ts uint32, rcv time.Time) {
	c.seen, c.started = true, false
	c.lastTS, c.ext, c.lastRcv, c.origin = ts, 0, rcv, rcv
}

// ideal returns the receive time of the latest unit had it come with the
// least delay seen.
func (c *trackClock) ideal() time.Time { return c.origin.Add(ticksDuration(c.ext, c.rate)) }

// start fixes the track's PTS offset in a run anchored at anchor (the ideal
// receive time of the run's first unit).
func (c *trackClock) start(anchor time.Time) {
	c.ptsOff = durationTicks(c.ideal().Sub(anchor), c.rate) - c.ext
	c.started = true
}

// pts returns the PTS of the latest unit in the run.
func (c *trackClock) pts() int64 { return c.ext + c.ptsOff }

func durationTicks(d time.Duration, rate int64) int64 {
	sec, frac := int64(d/time.Second), int64(d%time.Second)
	return sec*rate + frac*rate/int64(time.Second)
}

func ticksDuration(ticks, rate int64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(ticks) * time.Second / time.Duration(rate)
}
