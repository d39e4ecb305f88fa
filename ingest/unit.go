package ingest

import (
	"fmt"
	"time"
)

// Codec names a codec carried by a track.
type Codec string

// Codecs carried through ingest. Anything else makes a camera go offline with
// reason unsupported_codec.
const (
	CodecH264 Codec = "H264"
	CodecH265 Codec = "H265"
	CodecAAC  Codec = "AAC"  // MPEG-4 Audio, AAC-LC and friends, one AU per Unit
	CodecPCMU Codec = "PCMU" // G.711 µ-law
	CodecPCMA Codec = "PCMA" // G.711 A-law
)

// IsVideo reports whether c is a video codec.
func (c Codec) IsVideo() bool { return c == CodecH264 || c == CodecH265 }

// Track describes one elementary stream of a camera session. A Track is
// immutable once published: a change of parameters (a new SPS, a new session)
// publishes a new Tracks value with new Track pointers.
type Track struct {
	// ID is the track's index in its Tracks, 0-based, video first.
	ID int
	// Codec of the track.
	Codec Codec
	// ClockRate of PTS and DTS in Units of this track: 90000 for video, the
	// sample rate for audio.
	ClockRate int

	// Video: the parameter sets (without start codes) and the picture size
	// decoded from the SPS. VPS is set for H.265 only.
	VPS, SPS, PPS []byte
	Width, Height int

	// Audio: for AAC the AudioSpecificConfig bytes; for G.711 nil.
	// SampleRate and Channels describe the decoded audio.
	AudioConfig []byte
	SampleRate  int
	Channels    int
}

// String describes the track for logs ("H264 1920x1080", "AAC 48000Hz").
func (t *Track) String() string {
	if t.Codec.IsVideo() {
		return fmt.Sprintf("%s %dx%d", t.Codec, t.Width, t.Height)
	}
	return fmt.Sprintf("%s %dHz", t.Codec, t.SampleRate)
}

// Tracks is the set of tracks of one camera session. At most one video track
// (always Video) and at most one audio track.
type Tracks struct {
	Video *Track
	Audio *Track // nil when the camera sends no supported audio
}

// Unit is one access unit of one track: a whole picture for video, one AAC
// access unit or one G.711 packet for audio.
//
// Units are shared by every reader of a Stream and must not be modified after
// Publish; readers that need to change bytes copy them.
type Unit struct {
	// Track the unit belongs to; compare pointers to detect a new track.
	Track *Track
	// PTS is the presentation time in Track.ClockRate ticks, unwrapped from
	// the 32-bit RTP timestamp and counted from the start of the run.
	PTS int64
	// DTS is the decode time in the same clock. Equal to PTS unless the
	// camera sends B-frames.
	DTS int64
	// Wall is the capture time: from the camera's RTCP sender reports when it
	// sends them, else the receive time.
	Wall time.Time
	// Received is the server clock when the last packet of the unit arrived.
	Received time.Time
	// Key is true for a random-access point: an IDR (H.264) or IRAP (H.265)
	// picture, with the parameter sets in front of it in NALUs. Audio units
	// are always Key.
	Key bool
	// NALUs of a video unit, without start codes or length prefixes, AUDs
	// removed. Nil for audio.
	NALUs [][]byte
	// Payload of an audio unit. Nil for video.
	Payload []byte
	// Size is the number of media bytes (sum of NALU lengths or len(Payload)).
	Size int
}

// Reason says why media stopped or restarted.
type Reason string

// Reasons a stream is discontinuous. They match the recorder's gap reasons
// where the two meet.
const (
	// ReasonCameraOffline: the camera session ended (timeout, refused, eof…).
	ReasonCameraOffline Reason = "camera_offline"
	// ReasonDiscontinuity: the camera's timeline broke without the session
	// ending (SSRC change, RTP timestamp jump, large sequence gap, new
	// parameter sets).
	ReasonDiscontinuity Reason = "discontinuity"
	// ReasonWriterOverload: this reader's queue overflowed and units were
	// dropped for it alone.
	ReasonWriterOverload Reason = "writer_overload"
	// ReasonDisabled: the camera was disabled or removed.
	ReasonDisabled Reason = "disabled"
)

// Event is a change of a stream's state, delivered to readers in order with
// the units.
type Event struct {
	// Reason is why the timeline broke.
	Reason Reason
	// Detail is a human-readable cause ("ssrc changed", "timeout", ...).
	Detail string
	// At is the wall time of the break.
	At time.Time
	// Tracks, when set, are the tracks of units that follow (a new session
	// or new parameter sets). Nil when the stream went offline.
	Tracks *Tracks
}

// Item is what a Reader returns: a unit, or an event before the units that
// follow it. Exactly one of Unit and Event is set.
type Item struct {
	Unit  *Unit
	Event *Event
	// Cached is true for units replayed from the GOP cache when the reader
	// joined: they are in the past, and live viewers pace them.
	Cached bool
}
