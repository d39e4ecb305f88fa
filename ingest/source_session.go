package ingest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/pion/rtcp"
)

// ssrcConfirm is how many packets in a row must carry the same unexpected
// SSRC before the camera is taken to have changed it (stray packets with
// random SSRCs do not restart the session).
const ssrcConfirm = 8

// sessionResult is how a session ended.
type sessionResult struct {
	err         error
	online      time.Duration // how long media flowed; 0 when it never did
	ssrcChanged bool
}

// session is one RTSP session of a source. Its fields are guarded by the
// source's lock, except lastRTP (atomic) and restart (a channel).
type session struct {
	src *Source

	video *videoTrack
	audio *audioTrack

	// tracks are the tracks last published; pending is the event that
	// opens the next run, published with the run's first unit.
	tracks     *Tracks
	pending    *Event
	runStarted bool
	runAnchor  time.Time // ideal receive time of the run's first unit
	// jumpGrace: until then, a track that jumps is re-anchored (see
	// reanchorGrace).
	jumpGrace time.Time
	// haveKey and lastKeyPTS measure the keyframe interval within a run.
	haveKey    bool
	lastKeyPTS int64

	onlineAt time.Time // first unit published; zero before
	closing  bool      // the session is over: publish nothing more

	// SSRC change detection from the client's decode errors, per track
	// (keyed by the SSRC the client expected).
	ssrc [2]ssrcWatch

	lastRTP atomic.Int64 // unix nanoseconds of the latest RTP packet
	restart chan struct{}
}

// runSession runs one session until it fails or ctx ends.
func (s *Source) runSession(ctx context.Context, detail string) (res sessionResult) {
	sess := &session{
		src:     s,
		restart: make(chan struct{}, 1),
		pending: &Event{Reason: ReasonDiscontinuity, Detail: detail},
	}
	s.mu.Lock()
	if detail != DetailSSRCChanged {
		s.setStateLocked(StateConnecting, "", "")
	}
	s.rates.reset()
	s.h.Transport, s.h.HasBFrames = "", false
	s.mu.Unlock()

	c := &gortsplib.Client{
		Scheme:        s.url.Scheme,
		Host:          s.url.Host,
		ReadTimeout:   s.cfg.ReadTimeout,
		WriteTimeout:  s.cfg.ReadTimeout,
		UserAgent:     "kuzet",
		OnDecodeError: sess.onDecodeError,
		// Losses are counted from the sequence numbers, per track.
		OnPacketsLost: func(uint64) {},
		OnTransportSwitch: func(err error) {
			s.log.Info("switching transport", "detail", s.red.redact(err.Error()))
			s.mu.Lock()
			s.h.Transport = "tcp"
			s.mu.Unlock()
		},
	}
	if s.cfg.TLSConfig != nil {
		// The client writes ServerName into the config it is given.
		c.TLSConfig = s.cfg.TLSConfig.Clone()
	}
	switch s.cfg.Transport {
	case TransportTCP:
		t := gortsplib.TransportTCP
		c.Transport = &t
	case TransportUDP:
		t := gortsplib.TransportUDP
		c.Transport = &t
	}
	if err := c.Start2(); err != nil {
		return sessionResult{err: err}
	}
	stop := context.AfterFunc(ctx, c.Close)
	defer func() {
		stop()
		s.mu.Lock()
		sess.closing = true
		if !sess.onlineAt.IsZero() {
			res.online = time.Since(sess.onlineAt)
		}
		s.mu.Unlock()
		// The callbacks have returned once Close does.
		c.Close()
	}()

	desc, _, err := c.Describe(s.url)
	if err != nil {
		return sessionResult{err: err}
	}
	if err := sess.setup(desc); err != nil {
		return sessionResult{err: err}
	}
	for _, m := range []*description.Media{sess.videoMedia(), sess.audioMedia()} {
		if m == nil {
			continue
		}
		if _, err := c.Setup(desc.BaseURL, m, 0, 0); err != nil {
			return sessionResult{err: err}
		}
	}
	if v := sess.video; v != nil {
		c.OnPacketRTP(v.media, v.format, sess.onVideoRTP)
		c.OnPacketRTCP(v.media, sess.onRTCP(&v.sr))
	}
	if a := sess.audio; a != nil {
		c.OnPacketRTP(a.media, a.format, sess.onAudioRTP)
		c.OnPacketRTCP(a.media, sess.onRTCP(&a.sr))
	}
	sess.lastRTP.Store(time.Now().UnixNano())
	if _, err := c.Play(nil); err != nil {
		return sessionResult{err: err}
	}
	transport := "tcp"
	if c.Transport == nil || *c.Transport != gortsplib.TransportTCP {
		transport = "udp" // auto starts with UDP; a switch is logged
	}
	s.mu.Lock()
	s.h.Transport = transport
	s.mu.Unlock()

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	watchdog := time.NewTimer(s.cfg.ReadTimeout)
	defer watchdog.Stop()
	for {
		select {
		case err := <-waitErr:
			return sessionResult{err: err}
		case <-sess.restart:
			return sessionResult{ssrcChanged: true}
		case <-ctx.Done():
			return sessionResult{err: ctx.Err()}
		case now := <-watchdog.C:
			last := time.Unix(0, sess.lastRTP.Load())
			idle := now.Sub(last)
			if idle >= s.cfg.ReadTimeout {
				return sessionResult{err: errReadTimeout}
			}
			watchdog.Reset(s.cfg.ReadTimeout - idle)
		}
	}
}

// setup picks the tracks to pull from the session description: the first
// H.264 or H.265 video and the first AAC or G.711 audio. A camera without
// supported video, or without any supported media, is refused with
// errUnsupportedCodec naming what it offered.
func (sess *session) setup(desc *description.Session) error {
	s := sess.src
	var unsupportedVideo, unsupportedAudio []string
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		switch m.Type {
		case description.MediaTypeVideo:
			if sess.video != nil {
				continue
			}
			v, name := newVideoTrack(m, s.cfg.MaxAccessUnit)
			if v == nil {
				unsupportedVideo = append(unsupportedVideo, name)
				continue
			}
			sess.video = v
		case description.MediaTypeAudio:
			if sess.audio != nil {
				continue
			}
			a, name := newAudioTrack(m, s.cfg.MaxAccessUnit)
			if a == nil {
				unsupportedAudio = append(unsupportedAudio, name)
				continue
			}
			sess.audio = a
		}
	}
	if sess.video == nil && len(unsupportedVideo) > 0 {
		return errUnsupportedCodec{codec: strings.Join(unsupportedVideo, ", ")}
	}
	if sess.video == nil && sess.audio == nil {
		if len(unsupportedAudio) > 0 {
			return errUnsupportedCodec{codec: strings.Join(unsupportedAudio, ", ")}
		}
		return errUnsupportedCodec{codec: "(no audio or video media)"}
	}
	if len(unsupportedAudio) > 0 && sess.audio == nil {
		s.log.Info("camera audio not supported; pulling video only", "codec", strings.Join(unsupportedAudio, ", "))
	}
	if sess.video != nil && sess.audio != nil {
		sess.audio.track.ID = 1 // video first; set before anything is published
	}
	s.mu.Lock()
	s.h.VideoCodec, s.h.AudioCodec = "", ""
	if sess.video != nil {
		s.h.VideoCodec = sess.video.asm.codec
	}
	if sess.audio != nil {
		s.h.AudioCodec = sess.audio.codec
	}
	s.mu.Unlock()
	return nil
}

func (sess *session) videoMedia() *description.Media {
	if sess.video == nil {
		return nil
	}
	return sess.video.media
}

func (sess *session) audioMedia() *description.Media {
	if sess.audio == nil {
		return nil
	}
	return sess.audio.media
}

// onDecodeError counts the client's decode errors and spots an SSRC change:
// the client drops every packet whose SSRC differs from the first one it
// saw, and says so in the error text (it has no error type for it).
func (sess *session) onDecodeError(err error) {
	msg := err.Error()
	s := sess.src
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closing {
		return
	}
	if got, expected, ok := wrongSSRC(msg); ok {
		w := &sess.ssrc[0]
		switch {
		case w.expected == expected:
		case sess.ssrc[1].expected == expected, sess.ssrc[1].count < w.count:
			w = &sess.ssrc[1]
		}
		if w.expected != expected || w.cand != got {
			*w = ssrcWatch{expected: expected, cand: got}
		}
		w.count++
		if w.count == ssrcConfirm {
			sess.closing = true
			select {
			case sess.restart <- struct{}{}:
			default:
			}
		}
		return
	}
	s.h.DecodeErrors++
}

// ssrcWatch counts packets in a row that carried the same unexpected SSRC
// on one track.
type ssrcWatch struct {
	expected, cand uint32
	count          int
}

// wrongSSRC parses the client's "received packet with wrong SSRC N,
// expected M" error.
func wrongSSRC(msg string) (got, expected uint32, ok bool) {
	const marker, marker2 = "wrong SSRC ", "expected "
	i := strings.Index(msg, marker)
	if i < 0 {
		return 0, 0, false
	}
	got, rest, ok := leadingUint32(msg[i+len(marker):])
	if !ok {
		return 0, 0, false
	}
	j := strings.Index(rest, marker2)
	if j < 0 {
		return 0, 0, false
	}
	expected, _, ok = leadingUint32(rest[j+len(marker2):])
	return got, expected, ok
}

func leadingUint32(s string) (uint32, string, bool) {
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(s[:j], 10, 32)
	if err != nil {
		return 0, s, false
	}
	return uint32(v), s[j:], true
}

// errMorePackets reports the depacketizers' "not yet" answers, which are
// not errors: a unit is incomplete, or the session started in the middle
// of a fragmented NAL unit.
func errMorePackets(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious)
}

// senderClock maps a track's RTP timestamps to the camera's wall clock from
// its latest RTCP sender report. (The RTSP client has its own mapping, but it
// reads the NTP fraction as nanoseconds, which is off by up to 4 s for
// cameras that send standard NTP timestamps.)
type senderClock struct {
	ok   bool
	ntp  time.Time
	rtp  uint32
	ssrc uint32 // SSRC of the track's RTP packets, 0 before the first
}

// report takes a sender report received for the track's media.
func (c *senderClock) report(sr *rtcp.SenderReport) {
	if c.ssrc != 0 && sr.SSRC != c.ssrc {
		return
	}
	c.ok, c.ntp, c.rtp = true, ntpToTime(sr.NTPTime), sr.RTPTime
}

// wall returns the camera's wall time of RTP timestamp ts, or rcv and false
// before the first sender report.
func (c *senderClock) wall(ts uint32, rate int64, rcv time.Time) (time.Time, bool) {
	if !c.ok {
		return rcv, false
	}
	return c.ntp.Add(ticksDuration(int64(int32(ts-c.rtp)), rate)), true
}

// ntpToTime converts a 64-bit NTP timestamp (seconds since 1900, 32-bit
// binary fraction).
func ntpToTime(v uint64) time.Time {
	const epochOffset = 2208988800 // 1900 to 1970
	sec, frac := int64(v>>32), v&0xffffffff
	return time.Unix(sec-epochOffset, int64(frac*1e9>>32)).UTC()
}

// onRTCP handles the RTCP packets of a media: sender reports set its
// track's wall clock.
func (sess *session) onRTCP(c *senderClock) func(rtcp.Packet) {
	return func(p rtcp.Packet) {
		sr, ok := p.(*rtcp.SenderReport)
		if !ok {
			return
		}
		sess.src.mu.Lock()
		defer sess.src.mu.Unlock()
		c.report(sr)
	}
}
