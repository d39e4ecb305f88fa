// Package synth makes synthetic camera streams for the recorder's tests and
// benchmarks: real H.264 (320x240, 25 fps, one keyframe per second, 4 s
// looped) and AAC (16 kHz mono) access units, with media and wall times
// advancing as a camera's would. It holds no state besides what a Camera
// value carries and starts no goroutines.
package synth

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/kuzet/kuzet/ingest"
)

//go:embed h264_320x240_25fps_gop25.h264
var clipH264 []byte

//go:embed aac_16k_mono.adts
var clipAAC []byte

// FPS of the clip.
const FPS = 25

// FrameTicks is one frame in 90 kHz ticks.
const FrameTicks = 90000 / FPS

// Clip is the decoded test clip.
type Clip struct {
	Video *ingest.Track
	Audio *ingest.Track
	AUs   [][][]byte // video access units, NAL units without AUDs
	AAC   [][]byte   // AAC access units
}

// Load parses the embedded clip.
func Load() (*Clip, error) {
	var annexb h264.AnnexB
	if err := annexb.Unmarshal(clipH264); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	c := &Clip{}
	var au [][]byte
	var sps, pps []byte
	for _, n := range annexb {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			if len(au) > 0 {
				c.AUs = append(c.AUs, au)
			}
			au = nil
			continue
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
		au = append(au, n)
	}
	if len(au) > 0 {
		c.AUs = append(c.AUs, au)
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("synth: sps: %w", err)
	}
	c.Video = &ingest.Track{ID: 0, Codec: ingest.CodecH264, ClockRate: 90000, SPS: sps, PPS: pps, Width: s.Width(), Height: s.Height()}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(clipAAC); err != nil {
		return nil, fmt.Errorf("synth: adts: %w", err)
	}
	conf := mpeg4audio.AudioSpecificConfig{Type: pkts[0].Type, SampleRate: pkts[0].SampleRate, ChannelCount: pkts[0].ChannelCount}
	confBytes, err := conf.Marshal()
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	c.Audio = &ingest.Track{ID: 1, Codec: ingest.CodecAAC, ClockRate: pkts[0].SampleRate, AudioConfig: confBytes,
		SampleRate: pkts[0].SampleRate, Channels: 1}
	for _, p := range pkts {
		c.AAC = append(c.AAC, p.AU)
	}
	return c, nil
}

// IsKey reports whether an access unit holds an IDR picture.
func IsKey(au [][]byte) bool { return h264.IsRandomAccess(au) }

// Camera produces the units of one simulated camera. Each video unit
// carries, as its last NAL unit, an SEI whose payload is the frame number,
// so tests can check that no frame is lost or duplicated (FrameNumber).
type Camera struct {
	Clip   *Clip
	Tracks *ingest.Tracks
	Start  time.Time // wall time of frame 0
	frame  int64     // next video frame
	audio  int64     // next audio AU
	// WallJitter, when set, returns an offset added to each unit's wall
	// time (capture clock noise).
	WallJitter func(frame int64) time.Duration
	// Copy makes every video unit own a fresh copy of its bytes, as units
	// coming from ingest do (for memory measurements).
	Copy bool
}

// NewCamera returns a camera starting at start; audio adds the AAC track.
func NewCamera(c *Clip, start time.Time, audio bool) *Camera {
	t := &ingest.Tracks{Video: c.Video}
	if audio {
		t.Audio = c.Audio
	}
	return &Camera{Clip: c, Tracks: t, Start: start}
}

// seiUUID marks the frame-number SEI of synthetic cameras.
var seiUUID = [16]byte{'k', 'u', 'z', 'e', 't', '-', 's', 'y', 'n', 't', 'h', '-', 'f', 'r', 'm', '#'}

func frameSEI(n int64) []byte {
	// nal type 6, payload type 5 (user data unregistered), size 32: the
	// UUID and the frame number in 16 hex digits (no zero bytes, so no
	// emulation prevention is needed).
	b := []byte{6, 5, 32}
	b = append(b, seiUUID[:]...)
	b = fmt.Appendf(b, "%016x", uint64(n))
	return append(b, 0x80)
}

// FrameNumber returns the frame number of a synthetic video access unit.
func FrameNumber(au [][]byte) (int64, bool) {
	for _, n := range au {
		if len(n) == 36 && n[0] == 6 && n[1] == 5 && n[2] == 32 && [16]byte(n[3:19]) == seiUUID {
			v, err := strconv.ParseUint(string(n[19:35]), 16, 64)
			return int64(v), err == nil
		}
	}
	return 0, false
}

// Frame returns the next frame number.
func (c *Camera) Frame() int64 { return c.frame }

// NextVideo returns the next video unit.
func (c *Camera) NextVideo() *ingest.Unit {
	src := c.Clip.AUs[c.frame%int64(len(c.Clip.AUs))]
	nalus := make([][]byte, 0, len(src)+1)
	nalus = append(nalus, src...)
	nalus = append(nalus, frameSEI(c.frame))
	size := 0
	for _, n := range nalus {
		size += len(n)
	}
	if c.Copy {
		buf := make([]byte, 0, size)
		for i, n := range nalus {
			buf = append(buf, n...)
			nalus[i] = buf[len(buf)-len(n):]
		}
	}
	pts := c.frame * FrameTicks
	wall := c.Start.Add(time.Duration(c.frame) * time.Second / FPS)
	if c.WallJitter != nil {
		wall = wall.Add(c.WallJitter(c.frame))
	}
	u := &ingest.Unit{Track: c.Tracks.Video, PTS: pts, DTS: pts, Wall: wall, Received: wall,
		Key: IsKey(src), NALUs: nalus, Size: size}
	c.frame++
	return u
}

// NextAudio returns the next audio unit, or nil without audio.
func (c *Camera) NextAudio() *ingest.Unit {
	a := c.Tracks.Audio
	if a == nil {
		return nil
	}
	p := c.Clip.AAC[c.audio%int64(len(c.Clip.AAC))]
	pts := c.audio * 1024
	wall := c.Start.Add(time.Duration(pts) * time.Second / time.Duration(a.ClockRate))
	u := &ingest.Unit{Track: a, PTS: pts, DTS: pts, Wall: wall, Received: wall, Key: true, Payload: p, Size: len(p)}
	c.audio++
	return u
}

// Next returns the next unit in time order (video and audio interleaved).
func (c *Camera) Next() *ingest.Unit {
	if a := c.Tracks.Audio; a != nil {
		at := time.Duration(c.audio*1024) * time.Second / time.Duration(a.ClockRate)
		vt := time.Duration(c.frame) * time.Second / FPS
		if at < vt {
			return c.NextAudio()
		}
	}
	return c.NextVideo()
}

// SkipFrames advances the camera by n video frames (and the audio with
// it) without producing them: media time keeps running, as while a
// recorder is not reading.
func (c *Camera) SkipFrames(n int64) {
	c.frame += n
	if a := c.Tracks.Audio; a != nil {
		c.audio = c.frame * FrameTicks * int64(a.ClockRate) / 90000 / 1024
	}
}
