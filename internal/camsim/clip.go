package camsim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/pion/rtp"
)

// Payload types of the simulated cameras' SDP.
const (
	videoPayloadType = 96
	audioPayloadType = 97

	videoClockRate = 90000
	// rtpPayloadMaxSize keeps each RTP packet (12-byte header) within the
	// server's 1472-byte maximum packet size.
	rtpPayloadMaxSize = 1450
	// maxClipBytes bounds what a clip may hold in memory.
	maxClipBytes = 512 << 20
	// ptsMask wraps MPEG-TS 33-bit timestamps.
	ptsMask = 1<<33 - 1
)

// clip is a video (and optionally AAC audio) clip packetized into RTP
// payloads once, shared read-only by every camera that loops it.
type clip struct {
	path          string
	codec         string // CodecH264 or CodecH265
	width, height int
	vps, sps, pps []byte // vps only for H.265

	frames []clipFrame
	// loopTicks is the loop period in 90 kHz ticks: from the first frame to
	// the end of the last one.
	loopTicks int64
	bytes     int64 // video NAL unit bytes in one loop

	audio *clipAudio // nil without audio
}

// clipFrame is one video access unit.
type clipFrame struct {
	offset int64 // 90 kHz ticks from the first frame
	key    bool
	// params are the RTP payloads carrying the parameter sets (key frames
	// only); they precede the per-camera SEI packet. vcl are the RTP
	// payloads of the rest of the access unit; the last one ends it.
	params [][]byte
	vcl    [][]byte
}

type clipAudio struct {
	config    *mpeg4audio.AudioSpecificConfig
	clockRate int
	// loopTicks is the video loop period in the audio clock.
	loopTicks int64
	units     []clipAudioUnit
}

// clipAudioUnit is one AAC access unit, in one or more RTP payloads.
type clipAudioUnit struct {
	offset   int64 // audio clock ticks from the first video frame
	payloads [][]byte
}

// rawAU is an access unit as read from the container.
type rawAU struct {
	pts   int64
	nalus [][]byte
}

// loadClip reads an MPEG-TS file holding one H.264 or H.265 track without
// B-frames and optionally one AAC track, and packetizes it.
func loadClip(path string) (*clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	defer f.Close()
	cl, err := readClip(io.LimitReader(f, maxClipBytes))
	if err != nil {
		return nil, fmt.Errorf("clip %s: %w", path, err)
	}
	cl.path = path
	return cl, nil
}

// readClip parses and packetizes a clip from MPEG-TS bytes. The input is
// treated as untrusted: malformed data yields an error, never a panic.
func readClip(r io.Reader) (*clip, error) {
	tr := &mpegts.Reader{R: bufio.NewReaderSize(r, 64<<10)}
	if err := tr.Initialize(); err != nil {
		return nil, fmt.Errorf("read MPEG-TS: %w", err)
	}

	cl := &clip{}
	var video []rawAU
	var audioPES []rawAU // nalus holds the AAC access units of one PES
	var audioTrack *mpegts.Track
	var videoTrack *mpegts.Track
	var readErr error

	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *mpegts.CodecH264:
			if videoTrack != nil {
				continue
			}
			videoTrack, cl.codec = t, CodecH264
			tr.OnDataH264(t, func(pts, dts int64, au [][]byte) error {
				if pts != dts {
					readErr = errors.New("B-frames are not supported (encode with -bf 0)")
					return readErr
				}
				video = append(video, rawAU{pts: pts, nalus: cloneNALUs(au)})
				return nil
			})
		case *mpegts.CodecH265:
			if videoTrack != nil {
				continue
			}
			videoTrack, cl.codec = t, CodecH265
			tr.OnDataH265(t, func(pts, dts int64, au [][]byte) error {
				if pts != dts {
					readErr = errors.New("B-frames are not supported (encode with -bf 0)")
					return readErr
				}
				video = append(video, rawAU{pts: pts, nalus: cloneNALUs(au)})
				return nil
			})
		case *mpegts.CodecMPEG4Audio:
			if audioTrack != nil {
				continue
			}
			if c.SampleRate <= 0 || c.SampleRate > 192000 {
				return nil, fmt.Errorf("AAC track: bad sample rate %d", c.SampleRate)
			}
			audioTrack = t
			conf := c.Config
			cl.audio = &clipAudio{config: &conf, clockRate: c.SampleRate}
			tr.OnDataMPEG4Audio(t, func(pts int64, aus [][]byte) error {
				audioPES = append(audioPES, rawAU{pts: pts, nalus: cloneNALUs(aus)})
				return nil
			})
		}
	}
	if videoTrack == nil {
		return nil, errors.New("no H.264 or H.265 track")
	}

	for {
		err := tr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if readErr != nil {
			return nil, readErr
		}
		if err != nil {
			return nil, fmt.Errorf("read MPEG-TS: %w", err)
		}
	}

	if err := cl.buildVideo(video); err != nil {
		return nil, err
	}
	if cl.audio != nil {
		if err := cl.buildAudio(video[cl.firstKey(video)].pts, audioPES); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

func cloneNALUs(in [][]byte) [][]byte {
	out := make([][]byte, 0, len(in))
	for _, n := range in {
		if len(n) > 0 {
			out = append(out, append([]byte(nil), n...))
		}
	}
	return out
}

// naluKind classifies a NAL unit for packetization.
type naluKind int

const (
	naluDrop  naluKind = iota // AUD, SEI, filler: not sent
	naluParam                 // VPS, SPS, PPS
	naluOther                 // slices and everything else
)

func (cl *clip) kind(n []byte) naluKind {
	if cl.codec == CodecH264 {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS, h264.NALUTypePPS:
			return naluParam
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSEI, h264.NALUTypeFillerData:
			return naluDrop
		}
		return naluOther
	}
	if len(n) < 2 {
		return naluDrop
	}
	switch h265.NALUType((n[0] >> 1) & 0x3f) {
	case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT:
		return naluParam
	case h265.NALUType_AUD_NUT, h265.NALUType_PREFIX_SEI_NUT, h265.NALUType_SUFFIX_SEI_NUT, h265.NALUType_FD_NUT:
		return naluDrop
	}
	return naluOther
}

func (cl *clip) isKey(au [][]byte) bool {
	if cl.codec == CodecH264 {
		return h264.IsRandomAccess(au)
	}
	return h265.IsRandomAccess(au)
}

// firstKey returns the index of the first key frame, or len(video).
func (cl *clip) firstKey(video []rawAU) int {
	for i, au := range video {
		if cl.isKey(au.nalus) {
			return i
		}
	}
	return len(video)
}

// storeParam remembers a parameter set; it reports whether n is one.
func (cl *clip) storeParam(n []byte) {
	if cl.codec == CodecH264 {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			cl.sps = n
		case h264.NALUTypePPS:
			cl.pps = n
		}
		return
	}
	switch h265.NALUType((n[0] >> 1) & 0x3f) {
	case h265.NALUType_VPS_NUT:
		cl.vps = n
	case h265.NALUType_SPS_NUT:
		cl.sps = n
	case h265.NALUType_PPS_NUT:
		cl.pps = n
	}
}

func (cl *clip) paramSets() [][]byte {
	if cl.codec == CodecH265 {
		return [][]byte{cl.vps, cl.sps, cl.pps}
	}
	return [][]byte{cl.sps, cl.pps}
}

// buildVideo drops what precedes the first key frame, checks timing,
// ensures parameter sets precede every key frame and packetizes.
func (cl *clip) buildVideo(video []rawAU) error {
	first := cl.firstKey(video)
	if first == len(video) {
		return errors.New("no key frame")
	}
	video = video[first:]
	if len(video) < 2 {
		return errors.New("fewer than two frames")
	}

	// Parameter sets: the first ones found, for the SDP.
	for _, au := range video {
		for _, n := range au.nalus {
			if cl.kind(n) == naluParam {
				cl.storeParam(n)
			}
		}
		if cl.sps != nil && cl.pps != nil && (cl.codec == CodecH264 || cl.vps != nil) {
			break
		}
	}
	if cl.sps == nil || cl.pps == nil || (cl.codec == CodecH265 && cl.vps == nil) {
		return errors.New("parameter sets not found")
	}
	if err := cl.readSize(); err != nil {
		return err
	}

	enc, err := cl.newVideoEncoder()
	if err != nil {
		return err
	}

	pts0 := video[0].pts
	cl.frames = make([]clipFrame, 0, len(video))
	var prev int64 = -1
	for _, au := range video {
		off := (au.pts - pts0) & ptsMask
		if off <= prev {
			return fmt.Errorf("video timestamps do not increase at %d ticks", off)
		}
		if off-prev > 10*videoClockRate && prev >= 0 {
			return fmt.Errorf("video timestamps jump by %d ticks", off-prev)
		}
		prev = off

		fr := clipFrame{offset: off, key: cl.isKey(au.nalus)}
		var params, rest [][]byte
		for _, n := range au.nalus {
			switch cl.kind(n) {
			case naluParam:
				if fr.key {
					params = append(params, n)
				}
			case naluOther:
				rest = append(rest, n)
			}
		}
		if len(rest) == 0 {
			continue // nothing to show
		}
		if fr.key && len(params) < len(cl.paramSets()) {
			params = cl.paramSets()
		}
		if len(params) > 0 {
			if fr.params, err = encodePayloads(enc, params); err != nil {
				return err
			}
		}
		if fr.vcl, err = encodePayloads(enc, rest); err != nil {
			return err
		}
		for _, n := range rest {
			cl.bytes += int64(len(n))
		}
		cl.frames = append(cl.frames, fr)
	}
	if len(cl.frames) < 2 {
		return errors.New("fewer than two frames")
	}
	last := len(cl.frames) - 1
	cl.loopTicks = cl.frames[last].offset + (cl.frames[last].offset - cl.frames[last-1].offset)
	return nil
}

func (cl *clip) readSize() error {
	if cl.codec == CodecH264 {
		var s h264.SPS
		if err := s.Unmarshal(cl.sps); err != nil {
			return fmt.Errorf("H.264 SPS: %w", err)
		}
		cl.width, cl.height = s.Width(), s.Height()
		return nil
	}
	var s h265.SPS
	if err := s.Unmarshal(cl.sps); err != nil {
		return fmt.Errorf("H.265 SPS: %w", err)
	}
	cl.width, cl.height = s.Width(), s.Height()
	return nil
}

// videoEncoder packetizes NAL units into RTP payloads.
type videoEncoder interface {
	Encode(nalus [][]byte) ([]*rtp.Packet, error)
}

func (cl *clip) newVideoEncoder() (videoEncoder, error) {
	if cl.codec == CodecH264 {
		f := cl.videoFormat().(*format.H264)
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, fmt.Errorf("H.264 packetizer: %w", err)
		}
		e.PayloadMaxSize = rtpPayloadMaxSize
		return e, nil
	}
	f := cl.videoFormat().(*format.H265)
	e, err := f.CreateEncoder()
	if err != nil {
		return nil, fmt.Errorf("H.265 packetizer: %w", err)
	}
	e.PayloadMaxSize = rtpPayloadMaxSize
	return e, nil
}

func encodePayloads(enc videoEncoder, nalus [][]byte) ([][]byte, error) {
	pkts, err := enc.Encode(nalus)
	if err != nil {
		return nil, fmt.Errorf("packetize: %w", err)
	}
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		out[i] = p.Payload
	}
	return out, nil
}

// buildAudio keeps the AAC units that start within the video loop and
// packetizes them. pts0 is the PTS of the first video frame.
func (cl *clip) buildAudio(pts0 int64, pes []rawAU) error {
	a := cl.audio
	a.loopTicks = cl.loopTicks * int64(a.clockRate) / videoClockRate
	f := cl.audioFormat()
	enc, err := f.CreateEncoder()
	if err != nil {
		return fmt.Errorf("AAC packetizer: %w", err)
	}
	enc.PayloadMaxSize = rtpPayloadMaxSize
	for _, p := range pes {
		// signed distance from the first video frame, wrap-aware
		d := (p.pts - pts0) & ptsMask
		if d >= 1<<32 {
			d -= 1 << 33
		}
		base := d * int64(a.clockRate) / videoClockRate
		for i, au := range p.nalus {
			off := base + int64(i)*mpeg4audio.SamplesPerAccessUnit
			if off < 0 || off >= a.loopTicks {
				continue
			}
			pkts, err := enc.Encode([][]byte{au})
			if err != nil {
				return fmt.Errorf("AAC packetize: %w", err)
			}
			u := clipAudioUnit{offset: off}
			for _, pk := range pkts {
				u.payloads = append(u.payloads, pk.Payload)
			}
			if n := len(a.units); n > 0 && off <= a.units[n-1].offset {
				return fmt.Errorf("audio timestamps do not increase at %d ticks", off)
			}
			a.units = append(a.units, u)
		}
	}
	if len(a.units) == 0 {
		cl.audio = nil
	}
	return nil
}

// videoFormat returns a new format for the clip's video track.
func (cl *clip) videoFormat() format.Format {
	if cl.codec == CodecH265 {
		return &format.H265{PayloadTyp: videoPayloadType, VPS: cl.vps, SPS: cl.sps, PPS: cl.pps}
	}
	return &format.H264{PayloadTyp: videoPayloadType, SPS: cl.sps, PPS: cl.pps, PacketizationMode: 1}
}

func (cl *clip) audioFormat() *format.MPEG4Audio {
	return &format.MPEG4Audio{
		PayloadTyp:       audioPayloadType,
		Config:           cl.audio.config,
		SizeLength:       13,
		IndexLength:      3,
		IndexDeltaLength: 3,
	}
}

// description returns a new session description for one camera: each
// camera needs its own medias, as a stream is keyed by them.
func (cl *clip) description() (desc *description.Session, video, audio *description.Media) {
	video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{cl.videoFormat()}}
	desc = &description.Session{Title: "kuzet camsim", Medias: []*description.Media{video}}
	if cl.audio != nil {
		audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{cl.audioFormat()}}
		desc.Medias = append(desc.Medias, audio)
	}
	return desc, video, audio
}
