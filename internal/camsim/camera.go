package camsim

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// streamWriter is where a camera sends its packets: a gortsplib.ServerStream
// in production, a recorder in tests.
type streamWriter interface {
	WritePacketRTPWithNTP(medi *description.Media, pkt *rtp.Packet, ntp time.Time) error
	WritePacketRTCP(medi *description.Media, pkt rtcp.Packet) error
}

// pacer tells time and waits for it. realPacer waits on a timer (fake time
// under testing/synctest); benchmarks use a pacer that never waits.
type pacer interface {
	now() time.Time
	// waitUntil returns when t is reached, or false when ctx ends first.
	waitUntil(ctx context.Context, t time.Time) bool
}

// realPacer reuses one timer; it belongs to one camera goroutine.
type realPacer struct{ timer *time.Timer }

func newRealPacer() *realPacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &realPacer{timer: t}
}

func (*realPacer) now() time.Time { return time.Now() }

func (p *realPacer) waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	p.timer.Reset(d)
	select {
	case <-p.timer.C:
		return true
	case <-ctx.Done():
		p.timer.Stop()
		return false
	}
}

// Camera is one simulated camera: it loops its clip in real time into its
// RTSP stream, whether or not anyone reads it. Its methods inject faults and
// are safe for concurrent use.
type Camera struct {
	n        int
	clip     *clip
	log      *slog.Logger
	srPeriod time.Duration

	stream               streamWriter
	desc                 *description.Session
	video, audio         *description.Media
	videoSSRC, audioSSRC uint32

	framesSent   atomic.Uint64
	ssrcXor      atomic.Uint32 // applied to outgoing SSRCs on the wire
	garbageTotal atomic.Uint64 // malformed packets requested so far, per session
	jumpTicks    atomic.Int64  // 90 kHz ticks added to video timestamps
	losePending  atomic.Int64  // video packets still to lose
	writeErrors  atomic.Uint64
	queueDrops   atomic.Uint64 // packets dropped for slow readers
	dropLogged   atomic.Int64  // Unix nanoseconds of the last drop log line

	mu           sync.Mutex
	stallUntil   time.Time
	offlineUntil time.Time
	skew         time.Duration // clock skew of the sender reports
	skewUntil    time.Time     // when skew ends; zero: it stays
	sessions     map[*gortsplib.ServerSession]struct{}

	// owned by the run goroutine
	faults []faultState
	pkt    rtp.Packet
	seiBuf [64]byte
}

type faultState struct {
	f    Fault
	next time.Time // zero when done
}

func newCamera(n int, cl *clip, faults []Fault, srPeriod time.Duration, log *slog.Logger) *Camera {
	c := &Camera{
		n:        n,
		clip:     cl,
		log:      log.With("camera", n),
		srPeriod: srPeriod,
		sessions: make(map[*gortsplib.ServerSession]struct{}),
	}
	for _, f := range faults {
		if f.applies(n) {
			c.faults = append(c.faults, faultState{f: f})
		}
	}
	return c
}

// Number returns the camera number N of rtsp://ADDR/cam/N.
func (c *Camera) Number() int { return c.n }

// FramesSent returns how many video frames the camera has sent; the next
// frame's mark carries this number.
func (c *Camera) FramesSent() uint64 { return c.framesSent.Load() }

// PacketsDropped returns how many packets the server dropped because a
// reader's write queue (Config.WriteQueueSize) was full: the reader did not
// keep up. A reader that loses packets this way sees sequence gaps.
func (c *Camera) PacketsDropped() uint64 { return c.queueDrops.Load() }

// dropped counts a packet dropped for a slow reader, logging at most every
// 10 s per camera.
func (c *Camera) dropped(err error) {
	n := c.queueDrops.Add(1)
	now := time.Now().UnixNano()
	last := c.dropLogged.Load()
	if now-last >= int64(10*time.Second) && c.dropLogged.CompareAndSwap(last, now) {
		c.log.Warn("reader too slow: packets dropped", "total", n, "error", err)
	}
}

// Sessions returns how many RTSP sessions are set up on the camera.
func (c *Camera) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// DropSessions closes the camera's RTSP sessions now. Clients may reconnect
// at once.
func (c *Camera) DropSessions() {
	c.mu.Lock()
	ss := make([]*gortsplib.ServerSession, 0, len(c.sessions))
	for s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
	c.log.Info("fault: sessions dropped", "sessions", len(ss))
}

// Offline closes the camera's sessions now and answers 503 Service
// Unavailable to DESCRIBE, SETUP and PLAY for d.
func (c *Camera) Offline(d time.Duration) {
	c.mu.Lock()
	if u := time.Now().Add(d); u.After(c.offlineUntil) {
		c.offlineUntil = u
	}
	c.mu.Unlock()
	c.log.Info("fault: offline", "for", d)
	c.DropSessions()
}

func (c *Camera) offline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.offlineUntil)
}

// Stall keeps the sessions open but sends nothing (no RTP, no RTCP) for d.
// Then the clip resumes where it stopped: frame numbers and RTP sequence
// numbers continue without a gap, RTP timestamps jump by d since the
// camera's clock kept running.
func (c *Camera) Stall(d time.Duration) {
	c.mu.Lock()
	if u := time.Now().Add(d); u.After(c.stallUntil) {
		c.stallUntil = u
	}
	c.mu.Unlock()
	c.log.Info("fault: stall", "for", d)
}

func (c *Camera) stalledUntil() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stallUntil
}

// ChangeSSRC makes the next packets of every track (RTP and RTCP sender
// reports) carry a new SSRC; sequence numbers and timestamps continue.
func (c *Camera) ChangeSSRC() {
	old := c.ssrcXor.Load()
	for {
		x := rand.Uint32()
		if x != 0 && x != old {
			c.ssrcXor.Store(x)
			break
		}
	}
	c.log.Info("fault: SSRC changed")
}

// JumpTimestamp adds ticks of the 90 kHz video clock to the RTP timestamps
// of the video track from the next frame on, and the same duration to the
// audio track. Sender reports follow the new timestamps.
func (c *Camera) JumpTimestamp(ticks uint32) {
	c.jumpTicks.Add(int64(ticks))
	c.log.Info("fault: timestamp jump", "ticks", ticks)
}

// SendGarbage makes each session of the camera receive n malformed RTP
// packets on its video channel, ahead of the next video packet. They are
// malformed at the RTP level (runts, impossible CSRC counts, extension
// lengths or padding, an undeclared payload type), so a receiver must reject
// them; they do not use up sequence numbers. Garbage needs the TCP
// transport, the only one the simulator serves.
func (c *Camera) SendGarbage(n int) {
	if n <= 0 {
		return
	}
	c.garbageTotal.Add(uint64(n))
	c.log.Info("fault: garbage", "packets", n)
}

// LosePackets makes the camera skip its next n video RTP packets: their
// sequence numbers are used up, so every reader sees n packets lost (and the
// frames they belonged to damaged or missing) as on a lossy network.
func (c *Camera) LosePackets(n int) {
	if n <= 0 {
		return
	}
	c.losePending.Add(int64(n))
	c.log.Info("fault: packet loss", "packets", n)
}

// SkewClock sets the camera's clock d away from true time (negative: behind)
// as its RTCP sender reports show it: their NTP time is true time plus d,
// so a receiver that maps RTP timestamps to wall time through them sees
// every frame d late or early. The camera sends a sender report with the
// new clock before its next video frame. SkewClock(0) sets the clock right
// again. Frame pacing, RTP timestamps and SEI marks (Mark.Capture stays true
// send time) do not change. d is clamped to MaxClockSkew either way.
func (c *Camera) SkewClock(d time.Duration) {
	c.skewClock(d, 0)
}

// skewClock sets the skew, for a while when lasting is positive.
func (c *Camera) skewClock(d, lasting time.Duration) {
	d = max(min(d, MaxClockSkew), -MaxClockSkew)
	c.mu.Lock()
	c.skew, c.skewUntil = d, time.Time{}
	if lasting > 0 {
		c.skewUntil = time.Now().Add(lasting)
	}
	c.mu.Unlock()
	if lasting > 0 {
		c.log.Info("fault: clock skew", "offset", d, "for", lasting)
	} else {
		c.log.Info("fault: clock skew", "offset", d)
	}
}

// clockSkew returns the skew in force at now, ending a skew whose time is
// up.
func (c *Camera) clockSkew(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.skewUntil.IsZero() && !now.Before(c.skewUntil) {
		c.skew, c.skewUntil = 0, time.Time{}
		c.log.Info("fault: clock skew over")
	}
	return c.skew
}

func (c *Camera) addSession(s *gortsplib.ServerSession) {
	c.mu.Lock()
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
}

func (c *Camera) removeSession(s *gortsplib.ServerSession) {
	c.mu.Lock()
	delete(c.sessions, s)
	c.mu.Unlock()
}

// ticks converts a duration to clock ticks, without overflow for any
// duration.
func ticks(d time.Duration, rate int) int64 {
	return int64(d/time.Second)*int64(rate) + int64(d%time.Second)*int64(rate)/int64(time.Second)
}

// duration converts clock ticks to a duration, without overflow for any
// realistic tick count.
func duration(t int64, rate int) time.Duration {
	r := int64(rate)
	return time.Duration(t/r)*time.Second + time.Duration((t%r)*int64(time.Second)/r)
}

// ntpTime encodes t as an RTCP NTP timestamp.
func ntpTime(t time.Time) uint64 {
	s := uint64(t.UnixNano()) + 2208988800*uint64(time.Second)
	return (s/uint64(time.Second))<<32 | ((s%uint64(time.Second))<<32)/uint64(time.Second)
}

// loopState is the position of the run goroutine in the clip and in RTP.
type loopState struct {
	start time.Time
	pause time.Duration // total time stalled

	vLoop, aLoop int64
	vi, ai       int

	vSeq, aSeq       uint16
	vTSBase, aTSBase uint32

	lastSR                     time.Time
	skew                       time.Duration // of the last sender reports
	vPackets, vOctets          uint32
	aPackets, aOctets          uint32
	pauseVTicks, pauseATicks   int64
	lastJumpTicks, jumpATicks  int64
	audioRate                  int
	audioLoopTicks, vLoopTicks int64
}

// run loops the clip until ctx ends. start is the camera's time zero: the
// first frame is due then.
func (c *Camera) run(ctx context.Context, start time.Time, p pacer) {
	cl := c.clip
	s := loopState{
		start:      start,
		vSeq:       uint16(rand.Uint32()),
		aSeq:       uint16(rand.Uint32()),
		vTSBase:    rand.Uint32(),
		aTSBase:    rand.Uint32(),
		vLoopTicks: cl.loopTicks,
	}
	if cl.audio != nil {
		s.audioRate = cl.audio.clockRate
		s.audioLoopTicks = cl.audio.loopTicks
	}
	for i := range c.faults {
		c.faults[i].next = start.Add(c.faults[i].f.At)
	}

	for {
		fr := &cl.frames[s.vi]
		due := start.Add(duration(s.vLoop*s.vLoopTicks+fr.offset, videoClockRate) + s.pause)
		audio := false
		if cl.audio != nil {
			u := &cl.audio.units[s.ai]
			aDue := start.Add(duration(s.aLoop*s.audioLoopTicks+u.offset, s.audioRate) + s.pause)
			if aDue.Before(due) {
				due, audio = aDue, true
			}
		}
		if !p.waitUntil(ctx, due) {
			return
		}
		now := p.now()
		c.runFaults(now)
		// A packet due before the end of a stall waits for it, even when
		// the camera runs late and the stall is over by now: nothing due
		// inside the stall goes out early.
		if until := c.stalledUntil(); due.Before(until) {
			if !p.waitUntil(ctx, until) {
				return
			}
			s.pause += until.Sub(due)
			s.pauseVTicks = ticks(s.pause, videoClockRate)
			s.pauseATicks = ticks(s.pause, s.audioRate)
			continue
		}
		if j := c.jumpTicks.Load(); j != s.lastJumpTicks {
			s.lastJumpTicks = j
			s.jumpATicks = j * int64(s.audioRate) / videoClockRate
		}
		if audio {
			c.sendAudio(&s, due)
			continue
		}
		// A changed clock shows in a sender report at once.
		if skew := c.clockSkew(now); fr.key || now.Sub(s.lastSR) >= c.srPeriod || skew != s.skew {
			s.skew = skew
			c.sendSenderReports(&s, now)
		}
		c.sendFrame(&s, fr, due, now)
	}
}

// runFaults injects the scheduled faults that are due.
func (c *Camera) runFaults(now time.Time) {
	for i := range c.faults {
		fs := &c.faults[i]
		if fs.next.IsZero() || now.Before(fs.next) {
			continue
		}
		c.apply(fs.f)
		if fs.f.Every <= 0 {
			fs.next = time.Time{}
			continue
		}
		k := now.Sub(fs.next)/fs.f.Every + 1
		fs.next = fs.next.Add(k * fs.f.Every)
	}
}

func (c *Camera) apply(f Fault) {
	switch f.Kind {
	case FaultDrop:
		if f.For > 0 {
			c.Offline(f.For)
		} else {
			c.DropSessions()
		}
	case FaultStall:
		c.Stall(f.For)
	case FaultSSRC:
		c.ChangeSSRC()
	case FaultTimestampJump:
		c.JumpTimestamp(f.Ticks)
	case FaultGarbage:
		c.SendGarbage(f.Count)
	case FaultLoss:
		c.LosePackets(f.Count)
	case FaultClockSkew:
		c.skewClock(f.Offset, f.For)
	}
}

func (c *Camera) sendFrame(s *loopState, fr *clipFrame, due, now time.Time) {
	ts := s.vTSBase + uint32(s.vLoop*s.vLoopTicks+fr.offset+s.pauseVTicks+s.lastJumpTicks)
	sei := AppendMarkSEI(c.seiBuf[:0], c.clip.codec, Mark{
		Camera:  uint32(c.n),
		Frame:   c.framesSent.Load(),
		Capture: now,
	})
	for _, pl := range fr.params {
		c.writeRTP(c.video, videoPayloadType, &s.vSeq, ts, false, pl, due, &s.vPackets, &s.vOctets)
	}
	c.writeRTP(c.video, videoPayloadType, &s.vSeq, ts, false, sei, due, &s.vPackets, &s.vOctets)
	for i, pl := range fr.vcl {
		c.writeRTP(c.video, videoPayloadType, &s.vSeq, ts, i == len(fr.vcl)-1, pl, due, &s.vPackets, &s.vOctets)
	}
	c.framesSent.Add(1)

	s.vi++
	if s.vi == len(c.clip.frames) {
		s.vi = 0
		s.vLoop++
	}
}

func (c *Camera) sendAudio(s *loopState, due time.Time) {
	u := &c.clip.audio.units[s.ai]
	ts := s.aTSBase + uint32(s.aLoop*s.audioLoopTicks+u.offset+s.pauseATicks+s.jumpATicks)
	for i, pl := range u.payloads {
		c.writeRTP(c.audio, audioPayloadType, &s.aSeq, ts, i == len(u.payloads)-1, pl, due, &s.aPackets, &s.aOctets)
	}
	s.ai++
	if s.ai == len(c.clip.audio.units) {
		s.ai = 0
		s.aLoop++
	}
}

func (c *Camera) writeRTP(m *description.Media, pt uint8, seq *uint16, ts uint32, marker bool,
	payload []byte, ntp time.Time, packets, octets *uint32,
) {
	c.pkt.Header = rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    pt,
		SequenceNumber: *seq,
		Timestamp:      ts,
	}
	c.pkt.Payload = payload
	if m == c.video && c.losePending.Load() > 0 {
		c.losePending.Add(-1) // only this goroutine takes from it
	} else if err := c.stream.WritePacketRTPWithNTP(m, &c.pkt, ntp); err != nil {
		if c.writeErrors.Add(1) == 1 {
			c.log.Debug("write RTP", "error", err)
		}
	}
	*seq++
	*packets++
	*octets += uint32(len(payload))
}

// sendSenderReports sends one RTCP sender report per track, mapping now (on
// the camera's clock: s.skew away) to the RTP clock the camera's frames
// follow.
func (c *Camera) sendSenderReports(s *loopState, now time.Time) {
	s.lastSR = now
	elapsed := now.Sub(s.start)
	ntp := ntpTime(now.Add(s.skew))
	c.writeRTCP(c.video, &rtcp.SenderReport{
		SSRC:        c.videoSSRC,
		NTPTime:     ntp,
		RTPTime:     s.vTSBase + uint32(ticks(elapsed, videoClockRate)+s.lastJumpTicks),
		PacketCount: s.vPackets,
		OctetCount:  s.vOctets,
	})
	if c.audio != nil {
		c.writeRTCP(c.audio, &rtcp.SenderReport{
			SSRC:        c.audioSSRC,
			NTPTime:     ntp,
			RTPTime:     s.aTSBase + uint32(ticks(elapsed, s.audioRate)+s.jumpATicks),
			PacketCount: s.aPackets,
			OctetCount:  s.aOctets,
		})
	}
}

func (c *Camera) writeRTCP(m *description.Media, pkt rtcp.Packet) {
	if err := c.stream.WritePacketRTCP(m, pkt); err != nil {
		if c.writeErrors.Add(1) == 1 {
			c.log.Debug("write RTCP", "error", err)
		}
	}
}
