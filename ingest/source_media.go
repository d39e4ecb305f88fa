package ingest

import (
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/pion/rtp"
)

// depacketizer turns RTP packets into the NAL units of an access unit.
type depacketizer interface {
	Decode(*rtp.Packet) ([][]byte, error)
}

// auGuard bounds what the depacketizer may hold for one access unit. It
// counts the payload bytes handed over since the last unit came out; past
// the maximum, the depacketizer is reset and the rest of the unit (until
// its marker bit or a new timestamp) is dropped, so an endless NAL unit
// costs at most max bytes.
type auGuard struct {
	max      int
	size     int
	ts       uint32 // RTP timestamp of the unit being assembled
	dropping bool   // dropping the rest of an oversize unit
}

// admit says whether pkt may go to the depacketizer; oversize is true when
// pkt made the unit too large (the caller resets the depacketizer).
func (g *auGuard) admit(pkt *rtp.Packet) (ok, oversize bool) {
	if g.dropping {
		if pkt.Timestamp == g.ts {
			if pkt.Marker {
				g.dropping = false
			}
			return false, false
		}
		g.dropping = false
	}
	if g.size == 0 {
		g.ts = pkt.Timestamp
	}
	g.size += len(pkt.Payload)
	if g.size > g.max {
		g.size, g.ts = 0, pkt.Timestamp
		g.dropping = !pkt.Marker
		return false, true
	}
	return true, false
}

// emitted is called when the depacketizer returned a unit at pkt; it
// returns the unit's RTP timestamp. A unit that ends because pkt has a new
// timestamp (cameras that do not set the marker bit) began before pkt, and
// pkt begins the next one.
func (g *auGuard) emitted(pkt *rtp.Packet) uint32 {
	ts := g.ts
	if pkt.Timestamp != ts {
		g.ts, g.size = pkt.Timestamp, len(pkt.Payload)
		return ts
	}
	g.size = 0
	return ts
}

func (g *auGuard) reset() { g.size, g.dropping = 0, false }

// videoTrack is the video pipeline of a session: sequence check, size
// guard, depacketizer, assembler, clocks.
type videoTrack struct {
	media  *description.Media
	format format.Format
	newDec func() (depacketizer, error)
	dec    depacketizer
	guard  auGuard
	asm    *videoAssembler
	dts    dtsExtractor
	clock  trackClock
	seq    seqTracker
	sr     senderClock
	// waitKey drops units until the next key unit (after a DTS failure).
	waitKey bool
}

// newVideoTrack returns the pipeline for the first supported format of m,
// or nil and the name of what m carries.
func newVideoTrack(m *description.Media, maxAU int) (*videoTrack, string) {
	name := ""
	for _, f := range m.Formats {
		if name == "" {
			name = f.Codec()
		}
		var v *videoTrack
		switch f := f.(type) {
		case *format.H264:
			vps, sps, pps := []byte(nil), f.SPS, f.PPS
			v = &videoTrack{asm: newVideoAssembler(CodecH264, vps, sps, pps), newDec: func() (depacketizer, error) { return f.CreateDecoder() }}
		case *format.H265:
			v = &videoTrack{asm: newVideoAssembler(CodecH265, f.VPS, f.SPS, f.PPS), newDec: func() (depacketizer, error) { return f.CreateDecoder() }}
		default:
			continue
		}
		dec, err := v.newDec()
		if err != nil {
			// e.g. H.264 packetization-mode 2, H.265 with DON
			name = f.Codec() + " (" + err.Error() + ")"
			continue
		}
		v.media, v.format, v.dec = m, f, dec
		v.guard.max = maxAU
		v.dts.codec = v.asm.codec
		v.clock.rate = int64(f.ClockRate())
		return v, ""
	}
	if name == "" {
		name = "(video without formats)"
	}
	return nil, name
}

// resetDepacketizer drops what the depacketizer holds: after loss, an
// oversize unit or a decode error, the unit in progress is incomplete.
func (v *videoTrack) resetDepacketizer() {
	if dec, err := v.newDec(); err == nil {
		v.dec = dec
	}
	v.guard.reset()
}

// audioTrack is the audio pipeline of a session.
type audioTrack struct {
	media  *description.Media
	format format.Format
	codec  Codec
	track  *Track
	// aac is the AAC depacketizer; nil for G.711 (one packet, one unit).
	aac      *rtpmpeg4audio.Decoder
	frameLen int64 // AAC samples per access unit
	maxAU    int
	clock    trackClock
	seq      seqTracker
	sr       senderClock
}

// newAudioTrack returns the pipeline for the first supported format of m,
// or nil and the name of what m carries.
func newAudioTrack(m *description.Media, maxAU int) (*audioTrack, string) {
	name := ""
	for _, f := range m.Formats {
		if name == "" {
			name = f.Codec()
		}
		a := &audioTrack{media: m, format: f, maxAU: maxAU}
		switch f := f.(type) {
		case *format.G711:
			a.codec = CodecPCMA
			if f.MULaw {
				a.codec = CodecPCMU
			}
			a.track = &Track{Codec: a.codec, ClockRate: f.ClockRate(), SampleRate: f.SampleRate, Channels: max(f.ChannelCount, 1)}
		case *format.MPEG4Audio:
			if f.Config == nil {
				continue
			}
			cfg, err := f.Config.Marshal()
			if err != nil {
				continue
			}
			dec, err := f.CreateDecoder()
			if err != nil {
				continue
			}
			a.codec, a.aac, a.frameLen = CodecAAC, dec, 1024
			if f.Config.FrameLengthFlag {
				a.frameLen = 960
			}
			a.track = &Track{Codec: CodecAAC, ClockRate: f.ClockRate(), AudioConfig: cfg,
				SampleRate: f.Config.SampleRate, Channels: f.Config.ChannelCount}
		default:
			continue
		}
		if a.track.ClockRate <= 0 {
			continue
		}
		a.clock.rate = int64(a.track.ClockRate)
		return a, ""
	}
	if name == "" {
		name = "(audio without formats)"
	}
	return nil, name
}

// onVideoRTP handles one video RTP packet. It runs on the client's reader
// goroutine and never blocks: what it publishes goes into bounded queues.
func (sess *session) onVideoRTP(pkt *rtp.Packet) {
	now := time.Now()
	sess.lastRTP.Store(now.UnixNano())
	s := sess.src
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closing {
		return
	}
	v := sess.video
	v.sr.ssrc = pkt.SSRC
	s.h.PacketsReceived++
	s.rates.addBytes(now, len(pkt.Payload))

	verdict, lost := v.seq.update(pkt.SequenceNumber)
	switch verdict {
	case seqStale:
		return
	case seqJump:
		sess.breakRun(DetailSequenceGap, now)
		v.resetDepacketizer()
	case seqOK:
		if lost > 0 {
			s.h.PacketsLost += uint64(lost)
			v.resetDepacketizer()
		}
	}
	ok, oversize := v.guard.admit(pkt)
	if oversize {
		s.h.OversizeUnits++
		v.resetDepacketizer()
		v.guard.dropping = !pkt.Marker
		v.guard.ts = pkt.Timestamp
	}
	if !ok {
		return
	}
	nalus, err := v.dec.Decode(pkt)
	if err != nil {
		if !errMorePackets(err) {
			s.h.DecodeErrors++
			v.resetDepacketizer()
		}
		return
	}
	ts := v.guard.emitted(pkt)
	sess.videoUnit(nalus, ts, pkt, now)
}

// videoUnit publishes one depacketized video access unit; s.mu is held.
func (sess *session) videoUnit(nalus [][]byte, ts uint32, pkt *rtp.Packet, now time.Time) {
	s := sess.src
	v := sess.video
	out, key, size, err := v.asm.assemble(nalus, s.cfg.MaxAccessUnit)
	switch {
	case err == errUnitTooLarge:
		s.h.OversizeUnits++
		return
	case err != nil:
		return // no picture: parameter sets learnt, nothing to publish
	}
	if v.clock.observe(ts, now) && sess.runStarted {
		sess.trackJumped(&v.clock, now)
	}
	if v.asm.track == nil {
		return // no usable random-access picture yet
	}
	if key && sess.runStarted && v.asm.track != sess.tracks.Video {
		sess.breakRun(DetailParameterSets, now)
	}
	if !sess.runStarted {
		if !key {
			return
		}
		sess.startRun(now, v.clock.ideal())
	}
	if !v.clock.started {
		v.clock.start(sess.runAnchor)
	}
	pts := v.clock.pts()
	if v.waitKey {
		if !key {
			return
		}
		v.waitKey = false
		v.dts.reset()
	}
	dts, err := v.dts.extract(out, pts)
	if err != nil {
		s.h.DecodeErrors++
		if !s.h.HasBFrames {
			// Without B-frames decode order is presentation order.
			dts = pts
		} else {
			v.waitKey = true
			return
		}
	}
	if dts != pts {
		s.h.HasBFrames = true
	}
	wall, known := v.sr.wall(ts, v.clock.rate, now)
	if known {
		s.noteClockOffset(wall, now)
	}
	u := &Unit{Track: sess.tracks.Video, PTS: pts, DTS: dts, Wall: wall, Received: now,
		Key: key, NALUs: out, Size: size}
	s.stream.Publish(u)

	s.h.Frames++
	s.h.LastFrame = now
	s.rates.addFrame(now, dts, v.clock.rate)
	if key {
		if sess.haveKey && pts > sess.lastKeyPTS {
			s.h.KeyframeInterval = ticksDuration(pts-sess.lastKeyPTS, v.clock.rate)
		}
		sess.haveKey, sess.lastKeyPTS = true, pts
	}
	sess.markOnline(now)
}

// onAudioRTP handles one audio RTP packet, like onVideoRTP.
func (sess *session) onAudioRTP(pkt *rtp.Packet) {
	now := time.Now()
	sess.lastRTP.Store(now.UnixNano())
	s := sess.src
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closing {
		return
	}
	a := sess.audio
	a.sr.ssrc = pkt.SSRC
	s.h.PacketsReceived++
	s.rates.addBytes(now, len(pkt.Payload))
	verdict, lost := a.seq.update(pkt.SequenceNumber)
	switch verdict {
	case seqStale:
		return
	case seqJump:
		sess.breakRun(DetailSequenceGap, now)
	case seqOK:
		s.h.PacketsLost += uint64(lost)
	}
	if a.aac == nil {
		if len(pkt.Payload) == 0 || len(pkt.Payload) > a.maxAU {
			s.h.DecodeErrors++
			return
		}
		sess.audioUnits(pkt, nil, pkt.Payload, now)
		return
	}
	aus, err := a.aac.Decode(pkt)
	if err != nil {
		if !errMorePackets(err) {
			s.h.DecodeErrors++
		}
		return
	}
	for _, au := range aus {
		if len(au) > a.maxAU {
			s.h.OversizeUnits++
			return
		}
	}
	sess.audioUnits(pkt, aus, nil, now)
}

// audioUnits publishes the units of one audio packet: the AAC access units
// aus, or the G.711 payload one. s.mu is held.
func (sess *session) audioUnits(pkt *rtp.Packet, aus [][]byte, one []byte, now time.Time) {
	s := sess.src
	a := sess.audio
	if a.clock.observe(pkt.Timestamp, now) && sess.runStarted {
		sess.trackJumped(&a.clock, now)
	}
	if !sess.runStarted {
		if sess.video != nil {
			return // runs start at a video keyframe
		}
		sess.startRun(now, a.clock.ideal())
	}
	if !a.clock.started {
		a.clock.start(sess.runAnchor)
	}
	pts := a.clock.pts()
	wall, known := a.sr.wall(pkt.Timestamp, a.clock.rate, now)
	if known {
		s.noteClockOffset(wall, now)
	}
	track := sess.tracks.Audio
	if one != nil {
		s.stream.Publish(&Unit{Track: track, PTS: pts, DTS: pts, Wall: wall, Received: now,
			Key: true, Payload: one, Size: len(one)})
	} else {
		for i, au := range aus {
			off := int64(i) * a.frameLen
			s.stream.Publish(&Unit{Track: track, PTS: pts + off, DTS: pts + off,
				Wall: wall.Add(ticksDuration(off, a.clock.rate)), Received: now,
				Key: true, Payload: au, Size: len(au)})
		}
	}
	if sess.video == nil {
		s.h.Frames++
		s.h.LastFrame = now
		s.rates.addFrame(now, pts, a.clock.rate)
	}
	sess.markOnline(now)
}

// trackJumped handles a timestamp jump of one track within a run: right
// after a run opened by a jump, the other tracks follow the one that broke
// it and are re-anchored; otherwise the run breaks. s.mu is held.
func (sess *session) trackJumped(c *trackClock, now time.Time) {
	if now.Before(sess.jumpGrace) {
		c.started = false
		return
	}
	sess.breakRun(DetailTimestampJump, now)
}

// breakRun ends the current run: the next key unit opens a new one with a
// discontinuity event. s.mu is held.
func (sess *session) breakRun(detail string, now time.Time) {
	if sess.runStarted {
		sess.runStarted = false
		sess.src.h.Discontinuities++
		if sess.pending == nil {
			sess.pending = &Event{Reason: ReasonDiscontinuity, Detail: detail, At: now}
		}
	}
	sess.resetClocks()
}

func (sess *session) resetClocks() {
	if v := sess.video; v != nil {
		v.clock.started = false
		v.dts.reset()
		v.waitKey = false
	}
	if a := sess.audio; a != nil {
		a.clock.started = false
	}
	sess.haveKey = false
}

// startRun opens a run at now, anchored at the ideal receive time of its
// first unit: it publishes the pending event with the current tracks (new
// Tracks when a track changed). s.mu is held.
func (sess *session) startRun(now, anchor time.Time) {
	s := sess.src
	var vt, at *Track
	if v := sess.video; v != nil {
		vt = v.asm.track
	}
	if a := sess.audio; a != nil {
		at = a.track
	}
	if sess.tracks == nil || sess.tracks.Video != vt || sess.tracks.Audio != at {
		sess.tracks = &Tracks{Video: vt, Audio: at}
	}
	ev := sess.pending
	if ev == nil {
		ev = &Event{Reason: ReasonDiscontinuity, Detail: DetailSessionStarted}
	}
	if ev.At.IsZero() {
		ev.At = now
	}
	ev.Tracks = sess.tracks
	sess.pending = nil
	s.stream.PublishEvent(ev)
	s.timelineOpen, s.offlinePublished = true, false
	sess.runStarted, sess.runAnchor = true, anchor
	sess.jumpGrace = time.Time{}
	if ev.Detail == DetailTimestampJump {
		sess.jumpGrace = now.Add(reanchorGrace)
	}
	sess.resetClocks()
	if vt != nil {
		s.h.Width, s.h.Height = vt.Width, vt.Height
	}
}

// markOnline records the first unit of a session. s.mu is held.
func (sess *session) markOnline(now time.Time) {
	if !sess.onlineAt.IsZero() {
		return
	}
	sess.onlineAt = now
	s := sess.src
	s.setStateLocked(StateOnline, "", "")
	s.lastLogged = ""
	s.log.Info("camera online", "video", trackString(sess.tracks.Video), "audio", trackString(sess.tracks.Audio), "transport", s.h.Transport)
}

func trackString(t *Track) string {
	if t == nil {
		return "none"
	}
	return t.String()
}

// noteClockOffset updates the camera clock offset from one unit whose wall
// time came from a sender report. s.mu is held.
func (s *Source) noteClockOffset(wall, rcv time.Time) {
	off := wall.Sub(rcv)
	if !s.h.ClockOffsetKnown {
		s.h.ClockOffset, s.h.ClockOffsetKnown = off, true
		return
	}
	// Smooth out network jitter; a real change of the camera clock shows
	// within a few dozen units.
	s.h.ClockOffset += (off - s.h.ClockOffset) / 16
}
