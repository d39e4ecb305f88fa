package viewer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// This file reads and rewrites the fragmented MP4 of recorded segments:
// the init section (ftyp+moov) for the codec's parameter sets and the
// tracks' timescales, and each fragment (moof+mdat) for its samples. Every
// function here takes untrusted bytes: it never panics and never allocates
// more than a bound of its input.

// Limits on recorded fMP4 read back.
const (
	maxMoofBytes     = 4 << 20 // one moof
	maxTrafSamples   = 1 << 16 // samples of one track in one fragment
	maxInitBytes     = 1 << 20 // an init section
	maxNALUsPerFrame = 1024
)

// errFMP4 wraps every refusal of the fMP4 readers.
var errFMP4 = errors.New("malformed fMP4")

func fmp4Errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errFMP4, fmt.Sprintf(format, a...))
}

// mp4Init is what playback and export need from an init section.
type mp4Init struct {
	raw []byte
	// videoID is the video track's id; codec "H264" or "H265" with its
	// parameter sets.
	videoID       uint32
	codec         string
	vps, sps, pps []byte
	// timescales of every track by id.
	timescales map[uint32]uint32
}

// parseInit reads an init section.
func parseInit(b []byte) (in *mp4Init, err error) {
	if len(b) > maxInitBytes {
		return nil, fmp4Errorf("init section of %d bytes", len(b))
	}
	defer func() {
		// The init parser is a dependency; should it panic on odd
		// bytes, the segment is bad, not the server.
		if r := recover(); r != nil {
			in, err = nil, fmp4Errorf("init section: %v", r)
		}
	}()
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		return nil, fmp4Errorf("init section: %v", err)
	}
	in = &mp4Init{raw: b, timescales: map[uint32]uint32{}}
	for _, t := range init.Tracks {
		if t.ID <= 0 || t.ID > 1<<31 || t.TimeScale == 0 {
			return nil, fmp4Errorf("init section: track %d with timescale %d", t.ID, t.TimeScale)
		}
		in.timescales[uint32(t.ID)] = t.TimeScale
		if in.codec != "" {
			continue
		}
		switch c := t.Codec.(type) {
		case *mp4.CodecH264:
			in.videoID, in.codec, in.sps, in.pps = uint32(t.ID), "H264", c.SPS, c.PPS
		case *mp4.CodecH265:
			in.videoID, in.codec, in.vps, in.sps, in.pps = uint32(t.ID), "H265", c.VPS, c.SPS, c.PPS
		}
	}
	if in.codec == "" {
		return nil, fmp4Errorf("init section: no H.264 or H.265 track")
	}
	if in.timescales[in.videoID] != 90000 {
		return nil, fmp4Errorf("init section: video timescale %d, want 90000", in.timescales[in.videoID])
	}
	return in, nil
}

// mp4Sample is one sample of a fragment. Its data is [off, off+size) of the
// fragment's bytes; time is its decode time in its track's timescale from
// the start of the segment.
type mp4Sample struct {
	time  int64
	dur   uint32
	size  uint32
	flags uint32
	cto   int32
	off   int64
}

// key reports whether the sample is a sync sample.
func (s mp4Sample) key() bool { return s.flags&0x10000 == 0 }

// mp4Traf is one track's run in a fragment.
type mp4Traf struct {
	trackID uint32
	// tfdtPos is the offset of the tfdt value in the fragment, tfdtV1
	// whether it is 64-bit; -1 without tfdt.
	tfdtPos int
	tfdtV1  bool
	samples []mp4Sample
}

// mp4Fragment is a parsed moof with the bounds of its mdat.
type mp4Fragment struct {
	moofSize int64
	// mfhdPos is the offset of the sequence number in the fragment.
	mfhdPos int
	trafs   []mp4Traf
	// dataStart and dataEnd bound the mdat payload in the fragment.
	dataStart, dataEnd int64
}

// track returns the run of track id, or nil.
func (f *mp4Fragment) track(id uint32) *mp4Traf {
	for i := range f.trafs {
		if f.trafs[i].trackID == id {
			return &f.trafs[i]
		}
	}
	return nil
}

// boxHeader reads the box header at b[0:]: its type, header length and
// total size (which may exceed len(b) when only the start is held).
func boxHeader(b []byte) (typ string, hdr, size int64, err error) {
	if len(b) < 8 {
		return "", 0, 0, fmp4Errorf("truncated box header")
	}
	size, typ, hdr = int64(binary.BigEndian.Uint32(b)), string(b[4:8]), 8
	switch size {
	case 0:
		return typ, 0, 0, fmp4Errorf("box %q without a size", printableType(typ))
	case 1:
		if len(b) < 16 {
			return typ, 0, 0, fmp4Errorf("truncated box header")
		}
		u := binary.BigEndian.Uint64(b[8:])
		if u > 1<<62 {
			return typ, 0, 0, fmp4Errorf("box %q of absurd size", printableType(typ))
		}
		size, hdr = int64(u), 16
	}
	if size < hdr {
		return typ, 0, 0, fmp4Errorf("box %q smaller than its header", printableType(typ))
	}
	return typ, hdr, size, nil
}

func printableType(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Sprintf("%x", s)
		}
	}
	return s
}

// eachBox calls fn for every child box of b (a container's payload), with
// the child's offset in b.
func eachBox(b []byte, fn func(typ string, off int, payload []byte) error) error {
	for off, n := 0, 0; off < len(b); n++ {
		if n > 1024 {
			return fmp4Errorf("too many boxes")
		}
		typ, hdr, size, err := boxHeader(b[off:])
		if err != nil {
			return err
		}
		if size > int64(len(b)-off) {
			return fmp4Errorf("box %q does not fit its container", printableType(typ))
		}
		if err := fn(typ, off, b[off+int(hdr):off+int(size)]); err != nil {
			return err
		}
		off += int(size)
	}
	return nil
}

// moofSize returns the size of the moof box that head (the start of a
// fragment) begins with.
func moofSize(head []byte) (int64, error) {
	typ, _, size, err := boxHeader(head)
	if err != nil {
		return 0, err
	}
	if typ != "moof" {
		return 0, fmp4Errorf("fragment starts with %q, not moof", printableType(typ))
	}
	if size > maxMoofBytes {
		return 0, fmp4Errorf("moof of %d bytes", size)
	}
	return size, nil
}

// parseFragment parses the moof that b starts with, and the header of the
// mdat after it. b holds at least the moof and the mdat header; fragSize
// is the whole fragment's size, which the mdat must fill exactly. Every
// sample must lie within the mdat.
func parseFragment(b []byte, fragSize int64) (*mp4Fragment, error) {
	ms, err := moofSize(b)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < ms+8 || ms+8 > fragSize {
		return nil, fmp4Errorf("fragment shorter than its moof and mdat header")
	}
	_, mhdr, _, _ := boxHeader(b)
	f := &mp4Fragment{moofSize: ms, mfhdPos: -1}
	mtyp, dhdr, dsize, err := boxHeader(b[ms:])
	if err != nil {
		return nil, err
	}
	if mtyp != "mdat" || ms+dsize != fragSize {
		return nil, fmp4Errorf("the moof is not followed by an mdat that ends the fragment")
	}
	f.dataStart, f.dataEnd = ms+dhdr, ms+dsize
	prevEnd := int64(-1)
	err = eachBox(b[mhdr:ms], func(typ string, off int, p []byte) error {
		boxOff := int(mhdr) + off
		switch typ {
		case "mfhd":
			if len(p) < 8 {
				return fmp4Errorf("short mfhd")
			}
			f.mfhdPos = boxOff + headerLen(b[boxOff:]) + 4 // after version and flags
		case "traf":
			if len(f.trafs) >= 8 {
				return fmp4Errorf("too many tracks in a fragment")
			}
			t, end, err := parseTraf(p, boxOff+headerLen(b[boxOff:]), prevEnd, f.dataStart, f.dataEnd)
			if err != nil {
				return err
			}
			prevEnd = end
			f.trafs = append(f.trafs, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.mfhdPos < 0 {
		return nil, fmp4Errorf("moof without mfhd")
	}
	return f, nil
}

// headerLen is the header length of the box at b (8 or 16).
func headerLen(b []byte) int {
	if binary.BigEndian.Uint32(b) == 1 {
		return 16
	}
	return 8
}

// parseTraf parses a traf payload p that starts at offset base in the
// fragment. prevEnd is where the previous track's data ended (-1 for the
// first).
func parseTraf(p []byte, base int, prevEnd, dataStart, dataEnd int64) (mp4Traf, int64, error) {
	t := mp4Traf{tfdtPos: -1}
	var (
		haveTfhd                bool
		baseIsMoof              bool
		defDur, defSize, defFlg uint32
		tfdt                    int64
		haveTrun                bool
		end                     = prevEnd
	)
	err := eachBox(p, func(typ string, off int, q []byte) error {
		payloadOff := base + off + headerLen(p[off:])
		switch typ {
		case "tfhd":
			if len(q) < 8 {
				return fmp4Errorf("short tfhd")
			}
			flags := binary.BigEndian.Uint32(q) & 0xffffff
			t.trackID = binary.BigEndian.Uint32(q[4:])
			if flags&0x01 != 0 {
				return fmp4Errorf("tfhd with a base data offset")
			}
			baseIsMoof = flags&0x020000 != 0
			r := q[8:]
			take := func() (uint32, error) {
				if len(r) < 4 {
					return 0, fmp4Errorf("short tfhd")
				}
				v := binary.BigEndian.Uint32(r)
				r = r[4:]
				return v, nil
			}
			var err error
			if flags&0x02 != 0 {
				if _, err = take(); err != nil {
					return err
				}
			}
			if flags&0x08 != 0 {
				if defDur, err = take(); err != nil {
					return err
				}
			}
			if flags&0x10 != 0 {
				if defSize, err = take(); err != nil {
					return err
				}
			}
			if flags&0x20 != 0 {
				if defFlg, err = take(); err != nil {
					return err
				}
			}
			haveTfhd = true
		case "tfdt":
			if len(q) < 8 {
				return fmp4Errorf("short tfdt")
			}
			if q[0] == 1 {
				if len(q) < 12 {
					return fmp4Errorf("short tfdt")
				}
				v := binary.BigEndian.Uint64(q[4:])
				if v > 1<<62 {
					return fmp4Errorf("absurd tfdt")
				}
				tfdt, t.tfdtV1 = int64(v), true
			} else {
				tfdt = int64(binary.BigEndian.Uint32(q[4:]))
			}
			t.tfdtPos = payloadOff + 4
		case "trun":
			if !haveTfhd || haveTrun {
				return fmp4Errorf("trun before tfhd, or two truns")
			}
			haveTrun = true
			if len(q) < 8 {
				return fmp4Errorf("short trun")
			}
			flags := binary.BigEndian.Uint32(q) & 0xffffff
			count := binary.BigEndian.Uint32(q[4:])
			if count > maxTrafSamples {
				return fmp4Errorf("%d samples in one run", count)
			}
			r := q[8:]
			// The base is the moof for the first track (or when the
			// tfhd says so), else where the previous track's data
			// ended; without a data offset the data starts at the base.
			base := int64(0)
			if !baseIsMoof && end >= 0 {
				base = end
			}
			dataOff := base
			if flags&0x01 != 0 {
				if len(r) < 4 {
					return fmp4Errorf("short trun")
				}
				dataOff = base + int64(int32(binary.BigEndian.Uint32(r)))
				r = r[4:]
			}
			firstFlags, haveFirst := uint32(0), flags&0x04 != 0
			if haveFirst {
				if len(r) < 4 {
					return fmp4Errorf("short trun")
				}
				firstFlags, r = binary.BigEndian.Uint32(r), r[4:]
			}
			entry := 0
			for _, bit := range []uint32{0x100, 0x200, 0x400, 0x800} {
				if flags&bit != 0 {
					entry += 4
				}
			}
			if uint64(len(r)) < uint64(count)*uint64(entry) {
				return fmp4Errorf("trun entries truncated")
			}
			t.samples = make([]mp4Sample, 0, count)
			tm := int64(0)
			for i := uint32(0); i < count; i++ {
				s := mp4Sample{dur: defDur, size: defSize, flags: defFlg, off: dataOff}
				if flags&0x100 != 0 {
					s.dur, r = binary.BigEndian.Uint32(r), r[4:]
				}
				if flags&0x200 != 0 {
					s.size, r = binary.BigEndian.Uint32(r), r[4:]
				}
				if flags&0x400 != 0 {
					s.flags, r = binary.BigEndian.Uint32(r), r[4:]
				}
				if flags&0x800 != 0 {
					s.cto, r = int32(binary.BigEndian.Uint32(r)), r[4:]
				}
				if i == 0 && haveFirst {
					s.flags = firstFlags
				}
				if dataOff < dataStart || int64(s.size) > dataEnd-dataOff {
					return fmp4Errorf("track %d sample %d lies outside the mdat", t.trackID, i)
				}
				s.time = tm
				tm += int64(s.dur)
				dataOff += int64(s.size)
				t.samples = append(t.samples, s)
			}
			end = dataOff
		}
		return nil
	})
	if err != nil {
		return t, 0, err
	}
	if !haveTfhd || !haveTrun {
		return t, 0, fmp4Errorf("traf without tfhd or trun")
	}
	for i := range t.samples {
		t.samples[i].time += tfdt
	}
	return t, end, nil
}

// splitAVCC splits a sample of 4-byte length-prefixed NAL units. The NAL
// units are slices of b.
func splitAVCC(b []byte, dst [][]byte) ([][]byte, error) {
	dst = dst[:0]
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmp4Errorf("truncated NAL unit length")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, fmp4Errorf("NAL unit longer than its sample")
		}
		if n > 0 {
			if len(dst) >= maxNALUsPerFrame {
				return nil, fmp4Errorf("more than %d NAL units in a sample", maxNALUsPerFrame)
			}
			dst = append(dst, b[:n])
		}
		b = b[n:]
	}
	if len(dst) == 0 {
		return nil, fmp4Errorf("sample without NAL units")
	}
	return dst, nil
}

// patchFragment rewrites, in the moof at the start of b, the sequence
// number and every track's decode time (tfdt + shift[track]). The moof
// keeps its size.
func patchFragment(b []byte, f *mp4Fragment, seq uint32, shift func(track uint32) int64) error {
	binary.BigEndian.PutUint32(b[f.mfhdPos:], seq)
	for i := range f.trafs {
		t := &f.trafs[i]
		if t.tfdtPos < 0 {
			return fmp4Errorf("track %d has no tfdt to rebase", t.trackID)
		}
		base := int64(0)
		if len(t.samples) > 0 {
			base = t.samples[0].time
		} else if t.tfdtV1 {
			base = int64(binary.BigEndian.Uint64(b[t.tfdtPos:]))
		} else {
			base = int64(binary.BigEndian.Uint32(b[t.tfdtPos:]))
		}
		v := max(base+shift(t.trackID), 0)
		if t.tfdtV1 {
			binary.BigEndian.PutUint64(b[t.tfdtPos:], uint64(v))
		} else {
			if v > 1<<32-1 {
				return fmp4Errorf("track %d: decode time %d does not fit a version 0 tfdt", t.trackID, v)
			}
			binary.BigEndian.PutUint32(b[t.tfdtPos:], uint32(v))
		}
	}
	return nil
}

// buildFragment writes a new moof (and mdat header) holding, for each
// track of f, the samples keep selects, with decode times shifted; it
// returns the header bytes and the ranges of f's bytes that make up the
// mdat payload, in order.
func buildFragment(f *mp4Fragment, seq uint32, shift func(track uint32) int64, keep func(track uint32, s mp4Sample) bool) (hdr []byte, ranges [][2]int64, err error) {
	type kept struct {
		id      uint32
		base    int64
		samples []mp4Sample
	}
	var ks []kept
	for _, t := range f.trafs {
		k := kept{id: t.trackID}
		for _, s := range t.samples {
			if keep(t.trackID, s) {
				k.samples = append(k.samples, s)
			}
		}
		if len(k.samples) == 0 {
			continue
		}
		k.base = max(k.samples[0].time+shift(t.trackID), 0)
		ks = append(ks, k)
	}
	moof := 8 + 16
	for _, k := range ks {
		moof += 8 + 16 + 20 + 20 + 16*len(k.samples)
	}
	var data int64
	for _, k := range ks {
		for _, s := range k.samples {
			data += int64(s.size)
		}
	}
	mdatHdr := 8
	if 8+data > 1<<32-1 {
		mdatHdr = 16
	}
	b := make([]byte, 0, moof+mdatHdr)
	b = binary.BigEndian.AppendUint32(b, uint32(moof))
	b = append(b, "moof"...)
	b = binary.BigEndian.AppendUint32(b, 16)
	b = append(b, "mfhd"...)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, seq)
	dataOff := int64(moof + mdatHdr)
	for _, k := range ks {
		b = binary.BigEndian.AppendUint32(b, uint32(8+16+20+20+16*len(k.samples)))
		b = append(b, "traf"...)
		b = binary.BigEndian.AppendUint32(b, 16)
		b = append(b, "tfhd"...)
		b = binary.BigEndian.AppendUint32(b, 0x020000) // default-base-is-moof
		b = binary.BigEndian.AppendUint32(b, k.id)
		b = binary.BigEndian.AppendUint32(b, 20)
		b = append(b, "tfdt"...)
		b = binary.BigEndian.AppendUint32(b, 1<<24)
		b = binary.BigEndian.AppendUint64(b, uint64(k.base))
		b = binary.BigEndian.AppendUint32(b, uint32(20+16*len(k.samples)))
		b = append(b, "trun"...)
		b = binary.BigEndian.AppendUint32(b, 1<<24|0x000f01) // v1: data offset, duration, size, flags, cto
		b = binary.BigEndian.AppendUint32(b, uint32(len(k.samples)))
		b = binary.BigEndian.AppendUint32(b, uint32(dataOff))
		for _, s := range k.samples {
			b = binary.BigEndian.AppendUint32(b, s.dur)
			b = binary.BigEndian.AppendUint32(b, s.size)
			b = binary.BigEndian.AppendUint32(b, s.flags)
			b = binary.BigEndian.AppendUint32(b, uint32(s.cto))
			dataOff += int64(s.size)
			if n := len(ranges); n > 0 && ranges[n-1][1] == s.off {
				ranges[n-1][1] += int64(s.size)
			} else {
				ranges = append(ranges, [2]int64{s.off, s.off + int64(s.size)})
			}
		}
	}
	if mdatHdr == 16 {
		b = binary.BigEndian.AppendUint32(b, 1)
		b = append(b, "mdat"...)
		b = binary.BigEndian.AppendUint64(b, uint64(16+data))
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(8+data))
		b = append(b, "mdat"...)
	}
	if len(b) != moof+mdatHdr {
		return nil, nil, fmt.Errorf("internal error: built %d header bytes, planned %d", len(b), moof+mdatHdr)
	}
	return b, ranges, nil
}
