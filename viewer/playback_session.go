package viewer

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// playSession is one viewer playing back one or more cameras on one clock.
type playSession struct {
	id        string
	principal registry.Principal
	client    string
	reason    string
	incident  int64
	facility  string
	from, to  time.Time
	at        time.Time
	paused    bool
	sdpOffer  []byte
	started   time.Time
	cams      []*playCam
	pc        *webrtc.PeerConnection
	senders   []*webrtc.RTPSender
	connected chan struct{}
	ctrl      chan playControl
	cancel    context.CancelCauseFunc
	live      *Live

	dcMu sync.Mutex
	dc   *webrtc.DataChannel
}

// playControl is what the data channel hands the session: a command, a
// refused message, or the channel's opening.
type playControl struct {
	cmd  playCommand
	err  string
	sync bool
}

// playCam is one camera of a session.
type playCam struct {
	id     string
	codec  string
	params webrtc.RTPCodecParameters
	utrack *ingest.Track
	track  *webrtc.TrackLocalStaticRTP
	writer *liveRTPWriter
	mid    string

	fetch    *playFetcher
	frames   []playFrame
	gap      *RecordedGap
	ended    bool
	inGap    bool
	needKey  bool
	lastWall time.Time
	lastMark time.Time
	lastTS   int64
	sentAny  bool
	errors   int
}

func (s *playSession) offer() []byte { return s.sdpOffer }

func (s *playSession) stop(cause error) { s.cancel(cause) }

func (s *playSession) closePeer() {
	if s.pc != nil {
		_ = s.pc.Close()
	}
}

func (s *playSession) setDataChannel(dc *webrtc.DataChannel) {
	s.dcMu.Lock()
	s.dc = dc
	s.dcMu.Unlock()
}

// push hands the session goroutine a control item; when it is behind by
// more than the queue holds, the item is dropped.
func (s *playSession) push(c playControl) {
	select {
	case s.ctrl <- c:
	default:
	}
}

// send sends an event on the data channel, once it is open.
func (s *playSession) send(v any) {
	s.dcMu.Lock()
	dc := s.dc
	s.dcMu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_ = dc.SendText(string(b))
}

// endEntry is the audit row closing a session, or one range viewed.
func (s *playSession) endEntry(cause error, from, to time.Time) registry.Entry {
	e := registry.EntryFor(s.principal, s.client, registry.AuditPlayback)
	e.Facility, e.Reason, e.Objects, e.Outcome = s.facility, s.reason, s.objects(), registry.OutcomeOK
	e.From, e.To = from, to
	if cause != nil {
		e.Detail = fmt.Sprintf("session %s ended: %v", s.id, cause)
	} else {
		e.Detail = fmt.Sprintf("session %s viewed", s.id)
	}
	return e
}

// playClock maps capture time to when a frame is sent. Playing, a frame
// captured at w leaves at anchorReal + (w - anchorPos)/speed; paused, the
// frames at or before anchorPos leave at once and the others wait. After a
// seek to seekTo, the frames from the keyframe (catchPos) up to seekTo
// leave catchSpeed times faster than real time from catchReal, so that the
// picture at seekTo shows at once, and the clock starts when they are out.
type playClock struct {
	playing    bool
	speed      float64
	anchorPos  time.Time
	anchorReal time.Time
	seekTo     time.Time
	catchPos   time.Time
	catchReal  time.Time
	catchSpeed float64
}

// pos is the capture time the clock shows at now.
func (c *playClock) pos(now time.Time) time.Time {
	if !c.playing || now.Before(c.anchorReal) {
		return c.anchorPos
	}
	return c.anchorPos.Add(time.Duration(float64(now.Sub(c.anchorReal)) * c.speed))
}

// due says when a frame captured at w leaves; ok is false while paused for
// a frame after the position.
func (c *playClock) due(w time.Time) (time.Time, bool) {
	if !c.seekTo.IsZero() && w.Before(c.seekTo) && !w.Before(c.catchPos) {
		return c.catchReal.Add(time.Duration(float64(w.Sub(c.catchPos)) / c.catchSpeed)), true
	}
	if !w.After(c.anchorPos) {
		return time.Time{}, true
	}
	if !c.playing {
		return time.Time{}, false
	}
	return c.anchorReal.Add(time.Duration(float64(w.Sub(c.anchorPos)) / c.speed)), true
}

// reanchor fixes the position at now before a change of state or speed.
func (c *playClock) reanchor(now time.Time) {
	c.anchorPos = c.pos(now)
	if now.After(c.anchorReal) {
		c.anchorReal = now
	}
}

// skipAfter is how far ahead of the clock the next footage of every camera
// must be for the clock to jump to it.
const skipAfter = time.Second

// head is the capture time of what camera c sends next; ok is false when
// it has nothing (waiting for its fetcher, or ended).
func (c *playCam) head() (time.Time, bool) {
	switch {
	case c.gap != nil:
		return c.gap.Start, true
	case len(c.frames) > 0:
		return c.frames[0].wall, true
	}
	return time.Time{}, false
}

// waiting reports whether the camera waits for its fetcher.
func (c *playCam) waiting() bool { return c.gap == nil && len(c.frames) == 0 && !c.ended }

// runSession is a session's goroutine.
func (p *Playback) runSession(ctx context.Context, s *playSession) {
	var rtcp sync.WaitGroup
	var fg fetchGroup
	var viewFrom, viewTo time.Time
	flushView := func() {
		if !viewTo.After(viewFrom) {
			return
		}
		p.record(s.endEntry(nil, viewFrom, viewTo))
		viewFrom, viewTo = time.Time{}, time.Time{}
	}
	defer func() {
		fg.stop()
		s.closePeer()
		rtcp.Wait()
		flushView()
		p.record(s.endEntry(context.Cause(ctx), s.from, s.to))
		p.log.Info("playback ended", "session", s.id, "user", s.principal.Username, "cause", context.Cause(ctx))
	}()
	for _, snd := range s.senders {
		rtcp.Add(1)
		go func() {
			defer rtcp.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := snd.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	connect := time.NewTimer(s.live.cfg.ConnectTimeout)
	select {
	case <-s.connected:
		connect.Stop()
	case <-connect.C:
		s.stop(errLiveConnectTimeout)
		return
	case <-ctx.Done():
		connect.Stop()
		return
	}

	now := p.cfg.Now
	t0 := now()
	var keyOnly atomic.Bool
	notify := make(chan struct{}, 1)
	clock := playClock{speed: 1, playing: !s.paused, catchSpeed: p.cfg.CatchUpSpeed}
	var seeking bool
	var seekStarted time.Time
	ended := false

	seek := func(t time.Time) {
		if t.Before(s.from) {
			t = s.from
		}
		if !t.Before(s.to) {
			t = s.to.Add(-time.Millisecond)
		}
		flushView()
		var cfgs []fetchConfig
		for _, c := range s.cams {
			c.frames, c.gap, c.ended, c.inGap, c.needKey = nil, nil, false, false, true
			cfgs = append(cfgs, fetchConfig{recordings: p.recs, objects: p.objects, camera: c.id, from: t, to: s.to,
				keyOnly: &keyOnly, prefetch: p.cfg.Prefetch, maxFragment: p.cfg.MaxFragmentBytes, notify: notify,
				read: func(n int) { p.metrics.bytes.Add(float64(n)) }})
		}
		fs := fg.start(ctx, cfgs)
		for i, c := range s.cams {
			c.fetch = fs[i]
		}
		// Until the seek is done the clock stands at t.
		clock.seekTo, clock.anchorPos, clock.anchorReal = t, t, now().Add(time.Hour)
		seeking, seekStarted, ended = true, now(), false
	}
	// finishSeek starts the clock once every camera's first footage is
	// known (or SeekWait has passed).
	finishSeek := func(n time.Time) {
		catch := clock.seekTo
		for _, c := range s.cams {
			if len(c.frames) > 0 && c.frames[0].wall.Before(catch) {
				catch = c.frames[0].wall
			}
		}
		clock.catchPos, clock.catchReal = catch, n
		preroll := time.Duration(float64(clock.seekTo.Sub(catch)) / clock.catchSpeed)
		clock.anchorReal = n.Add(preroll)
		seeking = false
	}
	state := func() {
		s.send(playStateEvent{Type: "state", Playing: clock.playing, Speed: clock.speed, At: clock.pos(now())})
	}
	position := func() {
		ev := playPositionEvent{Type: "position", At: clock.pos(now()), Playing: clock.playing, Speed: clock.speed, Cameras: []playCameraPosition{}}
		for _, c := range s.cams {
			cp := playCameraPosition{Camera: c.id, State: "playing"}
			if c.sentAny {
				w := c.lastWall
				cp.At = &w
			}
			if !c.lastMark.IsZero() {
				m := c.lastMark
				cp.Mark = &m
			}
			switch {
			case c.ended && len(c.frames) == 0:
				cp.State = "ended"
			case c.inGap:
				cp.State = "gap"
			}
			ev.Cameras = append(ev.Cameras, cp)
		}
		s.send(ev)
	}
	// take hands camera c its fetcher's next item, if there is one.
	take := func(c *playCam) bool {
		var it playItem
		select {
		case it = <-c.fetch.items:
		default:
			return false
		}
		if it.err != nil {
			p.metrics.errors.Inc()
			c.errors++
			if c.errors <= 10 {
				p.log.Warn("playback: footage skipped", "camera", c.id, "err", it.err)
				s.send(playSimpleEvent{Type: "error", Camera: c.id, Detail: it.err.Error()})
			}
			c.needKey = true
		}
		switch {
		case it.gap != nil:
			c.gap = it.gap
		case len(it.frames) > 0:
			c.frames = it.frames
		case it.end:
			c.ended = true
		}
		return true
	}
	// fill takes each waiting camera's next items, without blocking.
	fill := func() {
		for _, c := range s.cams {
			for c.waiting() && take(c) {
			}
		}
	}
	sendFrame := func(c *playCam, f playFrame, due time.Time) error {
		if clock.speed > playKeyOnlySpeed && !f.key {
			c.needKey = true
			return nil
		}
		if c.needKey && !f.key {
			return nil
		}
		c.needKey = false
		if due.IsZero() {
			due = now()
		}
		ts := max(int64(due.Sub(t0).Seconds()*90000), c.lastTS+1)
		c.lastTS = ts
		u := &ingest.Unit{Track: c.utrack, NALUs: f.nalus, Key: f.key}
		if _, err := c.writer.write(liveOut{unit: u, ts: ts}); err != nil {
			return err
		}
		p.metrics.frames.Inc()
		c.lastWall, c.sentAny, c.inGap = f.wall, true, false
		if p.mark != nil {
			if m, ok := p.mark(c.codec, f.nalus); ok {
				c.lastMark = m
			}
		}
		if viewFrom.IsZero() || f.wall.Before(viewFrom) {
			viewFrom = f.wall
		}
		if end := f.wall.Add(f.dur); end.After(viewTo) {
			viewTo = end
		}
		return nil
	}
	lastShown := func() time.Time {
		var last time.Time
		for _, cam := range s.cams {
			if cam.sentAny && cam.lastWall.After(last) {
				last = cam.lastWall
			}
		}
		return last
	}
	command := func(c playCommand) {
		n := now()
		switch c.Op {
		case "play":
			if ended {
				clock.playing = true
				seek(s.from)
				break
			}
			clock.reanchor(n)
			clock.playing = true
		case "pause":
			clock.reanchor(n)
			clock.playing = false
		case "speed":
			clock.reanchor(n)
			wasKeyOnly := clock.speed > playKeyOnlySpeed
			clock.speed = c.Speed
			keyOnly.Store(c.Speed > playKeyOnlySpeed)
			if wasKeyOnly && c.Speed <= playKeyOnlySpeed {
				// Only keyframes were read ahead: read every frame again
				// from just after the last keyframe shown.
				at := clock.pos(n)
				if last := lastShown(); !last.IsZero() {
					at = last.Add(time.Microsecond)
				}
				seek(at)
			}
		case "seek":
			seek(c.At)
		case "step":
			clock.reanchor(n)
			clock.playing = false
			if c.Frames < 0 {
				if last := lastShown(); !last.IsZero() {
					seek(last.Add(-time.Microsecond))
				}
				break
			}
			next := time.Time{}
			for _, cam := range s.cams {
				if len(cam.frames) > 0 && (next.IsZero() || cam.frames[0].wall.Before(next)) {
					next = cam.frames[0].wall
				}
			}
			if !next.IsZero() && next.After(clock.anchorPos) {
				clock.anchorPos = next
			}
		}
	}

	seek(s.at)
	tick := time.NewTicker(p.cfg.PositionInterval)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		fill()
		n := now()
		if seeking {
			all := true
			for _, c := range s.cams {
				if c.waiting() {
					all = false
				}
			}
			if all || n.Sub(seekStarted) > p.cfg.SeekWait {
				finishSeek(n)
			}
		}
		var wake time.Time
		if !seeking {
			// Send whatever is due, earliest first.
			for sent := 0; sent < 256; sent++ {
				var best *playCam
				var bestDue time.Time
				for _, c := range s.cams {
					w, ok := c.head()
					if !ok {
						continue
					}
					d, ok := clock.due(w)
					if !ok {
						continue
					}
					if best == nil || d.Before(bestDue) {
						best, bestDue = c, d
					}
				}
				if best == nil {
					break
				}
				if bestDue.After(n) {
					wake = bestDue
					break
				}
				if best.gap != nil {
					g := best.gap
					best.gap, best.inGap = nil, true
					s.send(playGapEvent{Type: "gap", Camera: best.id, From: g.Start, To: g.End, Reason: g.Reason, Detail: g.Detail})
				} else {
					f := best.frames[0]
					best.frames = best.frames[1:]
					if err := sendFrame(best, f, bestDue); err != nil {
						s.stop(fmt.Errorf("send: %w", err))
						return
					}
				}
				fill()
			}
			// Every camera ended: pause at the end.
			allEnded := true
			for _, c := range s.cams {
				if !c.ended || c.gap != nil || len(c.frames) > 0 {
					allEnded = false
				}
			}
			if allEnded && !ended {
				ended = true
				clock.reanchor(n)
				clock.playing = false
				s.send(playSimpleEvent{Type: "end"})
				state()
			}
			// No camera has footage near the clock: jump to the next.
			if clock.playing && !ended && n.After(clock.anchorReal) {
				next, ok := time.Time{}, true
				for _, c := range s.cams {
					switch {
					case c.waiting(), c.gap != nil:
						ok = false
					case len(c.frames) > 0 && (next.IsZero() || c.frames[0].wall.Before(next)):
						next = c.frames[0].wall
					}
				}
				if pos := clock.pos(n); ok && !next.IsZero() && next.Sub(pos) > skipAfter {
					s.send(playSkipEvent{Type: "skip", From: pos, To: next})
					clock.anchorPos, clock.anchorReal = next, n
					continue
				}
			}
		}
		if !wake.IsZero() {
			timer.Reset(max(wake.Sub(n), 0))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-notify:
		case <-tick.C:
			position()
		case c := <-s.ctrl:
			switch {
			case c.sync:
				state()
			case c.err != "":
				s.send(playSimpleEvent{Type: "error", Detail: c.err})
			default:
				command(c.cmd)
				state()
			}
		}
	}
}
