package viewer

import (
	"context"
	"time"

	"github.com/kuzet/kuzet/ingest"
)

// liveFeed turns the items of a viewer's reader into what the viewer is
// sent: units with output timestamps, and the events between them.
//
// A viewer joins from the GOP cache, so its first unit is a keyframe from
// the past, followed by the rest of the GOP and whatever arrived meanwhile.
// Until it has caught up (a unit that is not cached and was received less
// than liveFreshAge ago) the feed is "catching up": video units leave at most speed
// times faster than real time (with pace set; a burst of a whole GOP
// overflows receive buffers on UDP), their timestamps advance speed times
// slower than their media time, so that the player shows the GOP fast and
// then plays at the live edge, and audio is skipped. Then units flow as they
// arrive, with timestamps that advance with their media time.
//
// Timestamps are continuous across the camera's timelines: after an event
// (offline, a new session, a discontinuity) the next unit of each track is
// placed after the last one sent by the wall time that passed, so players
// never see time run backwards.
type liveFeed struct {
	r     *ingest.Reader
	speed float64
	pace  bool
	now   func() time.Time

	video, audio liveTimeline
	catching     bool
	catchWall    time.Time // when the first catch-up unit was sent
	catchPTS     int64     // its PTS
	catchStarted bool
}

func newLiveFeed(r *ingest.Reader, speed float64, pace bool, now func() time.Time) *liveFeed {
	return &liveFeed{r: r, speed: speed, pace: pace, now: now, catching: true}
}

// liveFreshAge is how old a unit may be when read and still count as live:
// older ones queued up while the cached GOP was being sent and are part of
// the catch-up.
const liveFreshAge = 100 * time.Millisecond

// liveOut is one thing to send: a unit with its output timestamp, or an
// event.
type liveOut struct {
	unit *ingest.Unit
	// ts is the unit's timestamp in its track's clock, continuous for the
	// whole session; send it modulo 2^32 for RTP.
	ts int64
	// catchingUp is true for units of the catch-up.
	catchingUp bool
	event      *ingest.Event
}

// next returns the next thing to send, waiting for the reader and, while
// catching up with pace, for the unit's due time.
func (f *liveFeed) next(ctx context.Context) (liveOut, error) {
	for {
		it, err := f.r.Read(ctx)
		if err != nil {
			return liveOut{}, err
		}
		if it.Event != nil {
			f.video.breakRun()
			f.audio.breakRun()
			if it.Event.Tracks == nil {
				// The camera is gone: when it is back, its units are
				// fresh; a GOP cache replay after the return is treated
				// as a new catch-up by the Cached flag.
				f.catching, f.catchStarted = false, false
			}
			return liveOut{event: it.Event}, nil
		}
		u := it.Unit
		if u == nil || u.Track == nil {
			continue
		}
		behind := it.Cached || !u.Received.IsZero() && f.now().Sub(u.Received) > liveFreshAge
		if it.Cached && !f.catching {
			f.catching, f.catchStarted = true, false
		}
		if f.catching && !behind {
			f.catching = false
		}
		if !u.Track.Codec.IsVideo() {
			if f.catching {
				continue // audio of the past is not worth hearing fast
			}
			return liveOut{unit: u, ts: f.audio.next(u.PTS, u.Track.ClockRate, 1, f.now())}, nil
		}
		speed := 1.0
		if f.catching {
			speed = f.speed
			if err := f.wait(ctx, u); err != nil {
				return liveOut{}, err
			}
		}
		return liveOut{unit: u, ts: f.video.next(u.PTS, u.Track.ClockRate, speed, f.now()), catchingUp: f.catching}, nil
	}
}

// wait holds a catch-up unit until speed times faster than real time since
// the first catch-up unit.
func (f *liveFeed) wait(ctx context.Context, u *ingest.Unit) error {
	now := f.now()
	if !f.catchStarted || u.PTS < f.catchPTS {
		f.catchStarted, f.catchWall, f.catchPTS = true, now, u.PTS
		return nil
	}
	if !f.pace {
		return nil
	}
	media := time.Duration(float64(u.PTS-f.catchPTS) * float64(time.Second) / float64(max(u.Track.ClockRate, 1)))
	due := f.catchWall.Add(time.Duration(float64(media) / f.speed))
	d := due.Sub(now)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// liveTimeline maps the media time of one track's units (PTS, which restarts
// with each camera timeline) to a session's output timestamps, piecewise
// linearly: out = anchorOut + (pts - anchorIn) / speed.
type liveTimeline struct {
	started   bool
	broken    bool // re-anchor at the next unit by wall time
	speed     float64
	anchorIn  int64
	anchorOut int64
	lastIn    int64
	lastOut   int64
	lastWall  time.Time
}

// breakRun says the next unit starts a new timeline.
func (t *liveTimeline) breakRun() {
	if t.started {
		t.broken = true
	}
}

// next returns the output timestamp of a unit with pts in a clock of rate
// ticks per second, sent at wall time now at the given speed.
func (t *liveTimeline) next(pts int64, rate int, speed float64, now time.Time) int64 {
	switch {
	case !t.started:
		t.started, t.speed, t.anchorIn, t.anchorOut = true, speed, pts, 0
	case t.broken:
		gap := max(int64(now.Sub(t.lastWall).Seconds()*float64(rate)), 1)
		t.broken, t.speed, t.anchorIn, t.anchorOut = false, speed, pts, t.lastOut+gap
	case speed != t.speed:
		// Speed changes at this unit: its distance from the last one is
		// still at the old speed, the next ones at the new.
		t.anchorOut = t.lastOut + int64(float64(pts-t.lastIn)/t.speed)
		t.anchorIn, t.speed = pts, speed
	}
	out := t.anchorOut + int64(float64(pts-t.anchorIn)/t.speed)
	t.lastIn, t.lastOut, t.lastWall = pts, out, now
	return out
}
