package ingest

import (
	"time"
)

// State is the connection state of a camera.
type State string

// Camera states.
const (
	StateConnecting State = "connecting" // session being set up, or no media yet
	StateOnline     State = "online"     // media flowing
	StateOffline    State = "offline"    // session ended; see Health.Reason
	StateDisabled   State = "disabled"   // not pulled by configuration
)

// OfflineReason says why a camera is offline.
type OfflineReason string

// Offline reasons.
const (
	OfflineTimeout          OfflineReason = "timeout"           // no media for ReadTimeout, or no answer
	OfflineRefused          OfflineReason = "refused"           // TCP connection refused
	OfflineUnreachable      OfflineReason = "unreachable"       // name not resolved, no route
	OfflineAuthFailed       OfflineReason = "auth_failed"       // 401/403, or no usable auth method
	OfflineNotFound         OfflineReason = "not_found"         // 404 on the stream path
	OfflineUnsupportedCodec OfflineReason = "unsupported_codec" // no H.264/H.265 video (Detail names it)
	OfflineEOF              OfflineReason = "eof"               // the camera closed the connection
	OfflineTLS              OfflineReason = "tls"               // TLS handshake or certificate failure
	OfflineProtocol         OfflineReason = "protocol"          // the camera spoke broken RTSP/SDP
	OfflineStopped          OfflineReason = "stopped"           // the source was stopped
	OfflineError            OfflineReason = "error"             // anything else
)

// Health is a snapshot of one camera's ingest health. It is a value: take
// one with Source.Health or Manager.Health and read it at leisure.
type Health struct {
	Camera   string
	Facility string

	State State
	// Reason and Detail say why the camera is offline (empty otherwise).
	// Detail never holds credentials.
	Reason OfflineReason
	Detail string
	// Since is when State last changed.
	Since time.Time
	// Transport of the current or last session: "tcp" or "udp".
	Transport string

	// Video track of the current or last session (zero when none).
	VideoCodec    Codec
	Width, Height int
	// AudioCodec is empty when the camera sends no supported audio.
	AudioCodec Codec
	// HasBFrames is true once a unit with DTS ≠ PTS was seen.
	HasBFrames bool

	// FPS and Bitrate (bits per second, all tracks) over the last second or
	// so; zero when no media flows.
	FPS     float64
	Bitrate float64
	// KeyframeInterval is the media time between the last two keyframes.
	KeyframeInterval time.Duration

	// LastFrame is the receive time of the latest video unit (zero before
	// the first one); LastFrameAge is its age when the snapshot was taken.
	LastFrame    time.Time
	LastFrameAge time.Duration

	// ClockOffset is the camera's clock minus the server clock, from RTCP
	// sender reports (network delay included); ClockOffsetKnown is false
	// until the camera sent one.
	ClockOffset      time.Duration
	ClockOffsetKnown bool

	// Counters since the source started.
	Frames          uint64 // video units published
	PacketsReceived uint64 // RTP packets
	PacketsLost     uint64 // RTP packets missing from the sequence
	Reconnects      uint64 // sessions started after the first
	Discontinuities uint64 // new runs within a session (jump, gap, SSRC, parameters)
	OversizeUnits   uint64 // access units rejected for exceeding MaxAccessUnit
	DecodeErrors    uint64 // packets or units that could not be depacketized
	QueueDrops      uint64 // units lost by the stream's readers (all of them)
}

// rateWindow turns counters into rates over windows of at least a second:
// the bitrate by the receive clock, the frame rate by the media clock (DTS),
// so that a camera that sends in bursts still shows its real frame rate.
type rateWindow struct {
	start     time.Time
	bytes     uint64
	frames    int
	firstDTS  int64
	lastDTS   int64
	rate      int64
	fps, bits float64
	updated   time.Time
}

const rateWindowLen = time.Second

func (w *rateWindow) addBytes(now time.Time, n int) {
	w.bytes += uint64(n)
	w.roll(now)
}

func (w *rateWindow) addFrame(now time.Time, dts, rate int64) {
	if w.frames == 0 || dts < w.lastDTS || w.rate != rate {
		w.frames, w.firstDTS, w.rate = 0, dts, rate
	}
	w.frames++
	w.lastDTS = dts
	w.roll(now)
}

func (w *rateWindow) roll(now time.Time) {
	if w.start.IsZero() {
		w.start = now
		return
	}
	el := now.Sub(w.start)
	if el < rateWindowLen {
		return
	}
	w.bits = float64(w.bytes) * 8 / el.Seconds()
	if w.frames >= 2 && w.lastDTS > w.firstDTS && w.rate > 0 {
		w.fps = float64(w.frames-1) / (float64(w.lastDTS-w.firstDTS) / float64(w.rate))
	} else if w.frames == 0 {
		w.fps = 0
	}
	w.start, w.bytes, w.frames, w.updated = now, 0, 0, now
}

// rates returns the last rates, or zero when nothing came for two windows.
func (w *rateWindow) rates(now time.Time) (fps, bitrate float64) {
	if w.updated.IsZero() || now.Sub(w.start) > 2*rateWindowLen {
		return 0, 0
	}
	return w.fps, w.bits
}

func (w *rateWindow) reset() { *w = rateWindow{} }
