package ingest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// Errors of access-unit assembly. The source counts them and drops the unit.
var (
	// errUnitTooLarge: the access unit exceeds the configured maximum.
	errUnitTooLarge = errors.New("access unit too large")
	// errNoPicture: the access unit carries no picture (only parameter sets,
	// SEI or AUDs); its parameter sets are kept, the unit is not published.
	errNoPicture = errors.New("access unit without picture")
)

// NAL unit types the assembler looks at.
const (
	h264NALSlice = 1  // non-IDR slice (VCL types are 1..5)
	h264NALIDR   = 5  // IDR slice
	h264NALSPS   = 7  // sequence parameter set
	h264NALPPS   = 8  // picture parameter set
	h264NALAUD   = 9  // access unit delimiter
	h265NALIRAP0 = 16 // BLA_W_LP, first IRAP type
	h265NALIRAP1 = 23 // last (reserved) IRAP type
	h265NALVCL   = 31 // VCL types are 0..31
	h265NALVPS   = 32
	h265NALSPS   = 33
	h265NALPPS   = 34
	h265NALAUD   = 35
)

// videoAssembler normalises the access units of one H.264 or H.265 track:
// it drops AUDs and empty NAL units, learns the parameter sets (from the
// SDP, then in-band), puts them in front of every random-access picture
// that lacks them, and builds a new Track when they change.
//
// It keeps references to parameter-set NAL units it is given; those must
// not be modified afterwards (units are immutable once published).
type videoAssembler struct {
	codec         Codec
	vps, sps, pps []byte
	// track describes the current parameter sets once they are complete
	// and a random-access picture has used them; nil before.
	track *Track
	// dirty is set when the parameter sets changed since track was built.
	dirty bool
}

func newVideoAssembler(codec Codec, vps, sps, pps []byte) *videoAssembler {
	a := &videoAssembler{codec: codec}
	// Parameter sets from the SDP are checked like in-band ones.
	for _, ps := range [][]byte{vps, sps, pps} {
		if len(ps) >= a.headerLen() {
			a.learn(ps, a.nalType(ps))
		}
	}
	a.dirty = false
	return a
}

func (a *videoAssembler) headerLen() int {
	if a.codec == CodecH265 {
		return 2
	}
	return 1
}

func (a *videoAssembler) nalType(n []byte) int {
	if a.codec == CodecH265 {
		return int(n[0]>>1) & 0x3f
	}
	return int(n[0] & 0x1f)
}

// kind classifies a NAL unit type.
func (a *videoAssembler) kind(typ int) (vcl, key, aud, param bool) {
	if a.codec == CodecH265 {
		vcl = typ <= h265NALVCL
		key = typ >= h265NALIRAP0 && typ <= h265NALIRAP1
		aud = typ == h265NALAUD
		param = typ == h265NALVPS || typ == h265NALSPS || typ == h265NALPPS
		return
	}
	vcl = typ >= h264NALSlice && typ <= h264NALIDR
	key = typ == h264NALIDR
	aud = typ == h264NALAUD
	param = typ == h264NALSPS || typ == h264NALPPS
	return
}

// learn records a parameter set; it marks the assembler dirty when it
// differs from the current one.
func (a *videoAssembler) learn(n []byte, typ int) {
	var cur *[]byte
	switch {
	case a.codec == CodecH265 && typ == h265NALVPS:
		cur = &a.vps
	case a.codec == CodecH265 && typ == h265NALSPS, a.codec == CodecH264 && typ == h264NALSPS:
		cur = &a.sps
	case a.codec == CodecH265 && typ == h265NALPPS, a.codec == CodecH264 && typ == h264NALPPS:
		cur = &a.pps
	default:
		return
	}
	if !bytes.Equal(*cur, n) {
		*cur = n
		a.dirty = true
	}
}

// paramBit returns the bit of a parameter-set type in a set: VPS 1, SPS 2,
// PPS 4.
func (a *videoAssembler) paramBit(typ int) uint8 {
	switch {
	case a.codec == CodecH265 && typ == h265NALVPS:
		return 1
	case a.codec == CodecH265 && typ == h265NALSPS, a.codec == CodecH264 && typ == h264NALSPS:
		return 2
	}
	return 4
}

// complete reports whether every parameter set the codec needs is known.
func (a *videoAssembler) complete() bool {
	return a.sps != nil && a.pps != nil && (a.codec != CodecH265 || a.vps != nil)
}

// assemble normalises the NAL units of one access unit. It returns the NAL
// units to publish (in is reused when nothing is inserted), whether the unit
// is a random-access picture a reader can start at (parameter sets in front
// of it), and the number of media bytes. A unit larger than maxSize gives
// errUnitTooLarge; a unit without a picture gives errNoPicture.
//
// After a key unit, a.track describes its parameter sets; it is a new
// pointer when they changed.
func (a *videoAssembler) assemble(in [][]byte, maxSize int) (out [][]byte, key bool, size int, err error) {
	hl := a.headerLen()
	var vcl, drop, late bool // late: a parameter set after the picture
	var hasParams uint8      // bit set of the parameter sets present in the unit
	total := 0
	for _, n := range in {
		total += len(n)
		if total > maxSize {
			return nil, false, 0, errUnitTooLarge
		}
		if len(n) < hl {
			drop = true
			continue
		}
		typ := a.nalType(n)
		isVCL, isKey, isAUD, isParam := a.kind(typ)
		switch {
		case isAUD:
			drop = true
		case isParam:
			a.learn(n, typ)
			hasParams |= a.paramBit(typ)
			late = late || vcl
		case isVCL:
			vcl = true
			key = key || isKey
		}
	}
	if !vcl {
		return nil, false, 0, errNoPicture
	}
	if key && !a.complete() {
		// A random-access picture nobody can decode: not a start point.
		key = false
	}
	need, all := 2, uint8(0b110)
	if a.codec == CodecH265 {
		need, all = 3, 0b111
	}
	insert := key && (hasParams != all || late)
	if key && (a.track == nil || a.dirty) {
		a.track = a.buildTrack()
		a.dirty = false
	}

	switch {
	case insert:
		// Put the current parameter sets in front, in codec order, and
		// leave out any partial set the unit carried.
		out = make([][]byte, 0, len(in)+need)
		if a.codec == CodecH265 {
			out = append(out, a.vps)
		}
		out = append(out, a.sps, a.pps)
		for _, n := range in {
			if len(n) < hl {
				continue
			}
			_, _, isAUD, isParam := a.kind(a.nalType(n))
			if !isAUD && !isParam {
				out = append(out, n)
			}
		}
	case drop:
		// Filter in place: the depacketizer hands over a fresh slice.
		out = in[:0]
		for _, n := range in {
			if len(n) < hl {
				continue
			}
			if _, _, isAUD, _ := a.kind(a.nalType(n)); !isAUD {
				out = append(out, n)
			}
		}
		clear(in[len(out):])
	default:
		out = in
	}
	size = 0
	for _, n := range out {
		size += len(n)
	}
	if size > maxSize {
		return nil, false, 0, errUnitTooLarge
	}
	return out, key, size, nil
}

// buildTrack describes the current parameter sets. A parameter set that
// does not parse leaves the picture size at zero; the media is still
// carried, since a decoder may know better.
func (a *videoAssembler) buildTrack() *Track {
	t := &Track{Codec: a.codec, ClockRate: 90000, VPS: a.vps, SPS: a.sps, PPS: a.pps}
	t.Width, t.Height, _ = parseSPSSize(a.codec, a.sps)
	return t
}

// parseSPSSize returns the picture size an SPS declares.
func parseSPSSize(codec Codec, sps []byte) (width, height int, err error) {
	defer func() {
		// The SPS comes from the camera: a parser bug must not take the
		// process down.
		if r := recover(); r != nil {
			width, height, err = 0, 0, fmt.Errorf("%s SPS: parser failure: %v", codec, r)
		}
	}()
	switch codec {
	case CodecH264:
		var s h264.SPS
		if err := s.Unmarshal(sps); err != nil {
			return 0, 0, fmt.Errorf("H264 SPS: %w", err)
		}
		return s.Width(), s.Height(), nil
	case CodecH265:
		var s h265.SPS
		if err := s.Unmarshal(sps); err != nil {
			return 0, 0, fmt.Errorf("H265 SPS: %w", err)
		}
		return s.Width(), s.Height(), nil
	}
	return 0, 0, fmt.Errorf("%s: not a video codec", codec)
}

// dtsExtractor computes decode times of a video track; reset at every run.
type dtsExtractor struct {
	codec Codec
	h264  *h264.DTSExtractor
	h265  *h265.DTSExtractor
}

func (d *dtsExtractor) reset() {
	d.h264, d.h265 = nil, nil
}

// extract returns the DTS of a unit; the first unit after a reset must be a
// key unit with its parameter sets.
func (d *dtsExtractor) extract(nalus [][]byte, pts int64) (dts int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			d.reset()
			dts, err = 0, fmt.Errorf("%s DTS: parser failure: %v", d.codec, r)
		}
	}()
	switch d.codec {
	case CodecH264:
		if d.h264 == nil {
			d.h264 = &h264.DTSExtractor{}
			d.h264.Initialize()
		}
		return d.h264.Extract(nalus, pts)
	case CodecH265:
		if d.h265 == nil {
			d.h265 = &h265.DTSExtractor{}
			d.h265.Initialize()
		}
		return d.h265.Extract(nalus, pts)
	}
	return pts, nil
}
