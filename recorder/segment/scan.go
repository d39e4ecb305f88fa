package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits of Scan on untrusted files.
const (
	maxInitBox = 1 << 20  // ftyp or moov
	maxMoof    = 4 << 20  // one moof
	maxSamples = 1 << 20  // samples per trun
	maxBoxes   = 64 << 10 // child boxes looked at per container
)

// ScanResult is what Scan found in a segment file.
type ScanResult struct {
	// InitSize is the byte length of ftyp+moov.
	InitSize int64
	// VideoTrackID and VideoTimescale identify the video track.
	VideoTrackID   uint32
	VideoTimescale uint32
	// Fragments are the complete fragments, in file order. Times are
	// in VideoTimescale ticks.
	Fragments []Fragment
	// Size is the length of the valid prefix of the file: the end of the
	// last complete fragment, or InitSize when there is none.
	Size int64
	// MediaDuration is the summed video sample duration of the
	// fragments; Frames their video sample count.
	MediaDuration int64
	Frames        int
	// Stop says why scanning stopped before the end of the file ("" when
	// the whole file is valid).
	Stop string
}

// ErrNotSegment is returned when a file does not start with a usable init
// section: nothing in it can be recovered.
var ErrNotSegment = errors.New("segment: not an fMP4 segment")

// Scan reads a segment file of size bytes, possibly cut short by a crash,
// and returns its init section and the fragments that are complete: each
// moof whose samples lie within the following mdat. It stops at the first
// incomplete or malformed fragment. Scan never panics and reads at most one
// moof (≤4 MiB) into memory at a time.
func Scan(r io.ReaderAt, size int64) (ScanResult, error) {
	var res ScanResult
	off := int64(0)
	// ftyp
	typ, hdr, bsize, err := readHeader(r, off, size)
	if err != nil || typ != "ftyp" || bsize > maxInitBox {
		return res, fmt.Errorf("%w: no ftyp at the start", ErrNotSegment)
	}
	off += bsize
	typ, hdr, bsize, err = readHeader(r, off, size)
	if err != nil || typ != "moov" || bsize > maxInitBox {
		return res, fmt.Errorf("%w: no complete moov after ftyp", ErrNotSegment)
	}
	moov := make([]byte, bsize-hdr)
	if _, err := r.ReadAt(moov, off+hdr); err != nil {
		return res, fmt.Errorf("%w: reading moov: %v", ErrNotSegment, err)
	}
	res.VideoTrackID, res.VideoTimescale, err = findVideoTrack(moov)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrNotSegment, err)
	}
	off += bsize
	res.InitSize, res.Size = off, off

	var moofBuf []byte
	for off < size {
		typ, hdr, bsize, err := readHeader(r, off, size)
		if err != nil {
			res.Stop = err.Error()
			return res, nil
		}
		switch typ {
		case "free", "skip", "prft", "styp", "sidx":
			off += bsize
			res.Size = off
			continue
		case "moof":
		default:
			res.Stop = fmt.Sprintf("unexpected box %q at %d", printable(typ), off)
			return res, nil
		}
		if bsize > maxMoof {
			res.Stop = fmt.Sprintf("moof at %d too large", off)
			return res, nil
		}
		moofBuf = grow(moofBuf, int(bsize-hdr))
		if _, err := r.ReadAt(moofBuf, off+hdr); err != nil {
			res.Stop = fmt.Sprintf("reading moof at %d: %v", off, err)
			return res, nil
		}
		mdatOff := off + bsize
		mtyp, mhdr, msize, err := readHeader(r, mdatOff, size)
		if err != nil || mtyp != "mdat" {
			res.Stop = fmt.Sprintf("no complete mdat after moof at %d", off)
			return res, nil
		}
		fr, err := parseMoof(moofBuf, res.VideoTrackID, off, mdatOff+mhdr, mdatOff+msize)
		if err != nil {
			res.Stop = fmt.Sprintf("moof at %d: %v", off, err)
			return res, nil
		}
		fr.Offset, fr.Size = off, bsize+msize
		if len(res.Fragments) == 0 || fr.Time < res.MediaDuration {
			// tfdt missing or going back: place it after the previous one.
			fr.Time = max(fr.Time, res.MediaDuration)
		}
		res.MediaDuration = fr.Time + fr.Duration
		res.Frames += fr.samples
		res.Fragments = append(res.Fragments, fr.Fragment)
		off = mdatOff + msize
		res.Size = off
	}
	return res, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Sprintf("%x", s)
		}
	}
	return s
}

// readHeader reads the box header at off: its type, header length and
// total size, which must fit in the file.
func readHeader(r io.ReaderAt, off, size int64) (typ string, hdr, bsize int64, err error) {
	if size-off < 8 {
		return "", 0, 0, fmt.Errorf("truncated box header at %d", off)
	}
	var b [16]byte
	if _, err := r.ReadAt(b[:8], off); err != nil {
		return "", 0, 0, fmt.Errorf("reading box header at %d: %w", off, err)
	}
	s := int64(binary.BigEndian.Uint32(b[:4]))
	typ, hdr = string(b[4:8]), 8
	switch s {
	case 0:
		return typ, 0, 0, fmt.Errorf("box %q at %d runs to the end of the file", printable(typ), off)
	case 1:
		if size-off < 16 {
			return typ, 0, 0, fmt.Errorf("truncated box header at %d", off)
		}
		if _, err := r.ReadAt(b[8:16], off+8); err != nil {
			return "", 0, 0, fmt.Errorf("reading box header at %d: %w", off, err)
		}
		u := binary.BigEndian.Uint64(b[8:16])
		if u > 1<<62 {
			return typ, 0, 0, fmt.Errorf("box %q at %d has an absurd size", printable(typ), off)
		}
		s, hdr = int64(u), 16
	}
	if s < hdr {
		return typ, 0, 0, fmt.Errorf("box %q at %d smaller than its header", printable(typ), off)
	}
	if s > size-off {
		return typ, 0, 0, fmt.Errorf("box %q at %d is truncated (%d of %d bytes)", printable(typ), off, size-off, s)
	}
	return typ, hdr, s, nil
}

// children iterates over the boxes in b, calling fn with each box's type
// and payload. It fails on a box that does not fit.
func children(b []byte, fn func(typ string, payload []byte) error) error {
	for n := 0; len(b) > 0; n++ {
		if n >= maxBoxes {
			return errors.New("too many boxes")
		}
		if len(b) < 8 {
			return errors.New("truncated child box")
		}
		s := uint64(binary.BigEndian.Uint32(b))
		typ, hdr := string(b[4:8]), uint64(8)
		if s == 1 {
			if len(b) < 16 {
				return errors.New("truncated child box")
			}
			s, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if s == 0 {
			s = uint64(len(b))
		}
		if s < hdr || s > uint64(len(b)) {
			return fmt.Errorf("child box %q does not fit", printable(typ))
		}
		if err := fn(typ, b[hdr:s]); err != nil {
			return err
		}
		b = b[s:]
	}
	return nil
}

// findVideoTrack returns the id and timescale of the first video track of
// a moov payload.
func findVideoTrack(moov []byte) (id, timescale uint32, err error) {
	found := false
	err = children(moov, func(typ string, trak []byte) error {
		if typ != "trak" || found {
			return nil
		}
		var tid, ts uint32
		var handler string
		err := children(trak, func(typ string, p []byte) error {
			switch typ {
			case "tkhd":
				if len(p) < 4 {
					return errors.New("short tkhd")
				}
				pos := 12 // version 0: flags(4) creation(4) modification(4)
				if p[0] == 1 {
					pos = 20
				}
				if len(p) < pos+4 {
					return errors.New("short tkhd")
				}
				tid = binary.BigEndian.Uint32(p[pos:])
			case "mdia":
				return children(p, func(typ string, p []byte) error {
					switch typ {
					case "mdhd":
						pos := 12
						if len(p) > 0 && p[0] == 1 {
							pos = 20
						}
						if len(p) < pos+4 {
							return errors.New("short mdhd")
						}
						ts = binary.BigEndian.Uint32(p[pos:])
					case "hdlr":
						if len(p) < 12 {
							return errors.New("short hdlr")
						}
						handler = string(p[8:12])
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if handler == "vide" {
			if tid == 0 || ts == 0 {
				return errors.New("video track without id or timescale")
			}
			id, timescale, found = tid, ts, true
		}
		return nil
	})
	if err == nil && !found {
		err = errors.New("no video track")
	}
	return id, timescale, err
}

type scannedFragment struct {
	Fragment
	samples int
}

// parseMoof checks a moof payload (the moof box starts at moofOff in the
// file) against its mdat payload [dataStart, dataEnd) and returns the
// video track's timing.
func parseMoof(moof []byte, videoID uint32, moofOff, dataStart, dataEnd int64) (scannedFragment, error) {
	var fr scannedFragment
	sawVideo := false
	err := children(moof, func(typ string, traf []byte) error {
		if typ != "traf" {
			return nil
		}
		var (
			trackID                uint32
			tfhdFlags              uint32
			base                   = moofOff
			defDur, defSize, defFl uint32
			haveTfhd, haveTfdt     bool
			tfdt                   uint64
			dataOff                = int64(-1)
		)
		return children(traf, func(typ string, p []byte) error {
			switch typ {
			case "tfhd":
				if len(p) < 8 {
					return errors.New("short tfhd")
				}
				tfhdFlags = binary.BigEndian.Uint32(p) & 0xffffff
				trackID = binary.BigEndian.Uint32(p[4:])
				q := p[8:]
				take := func() (uint32, error) {
					if len(q) < 4 {
						return 0, errors.New("short tfhd")
					}
					v := binary.BigEndian.Uint32(q)
					q = q[4:]
					return v, nil
				}
				if tfhdFlags&0x01 != 0 { // base-data-offset
					if len(q) < 8 {
						return errors.New("short tfhd")
					}
					b := binary.BigEndian.Uint64(q)
					if b > 1<<62 {
						return errors.New("absurd base data offset")
					}
					base = int64(b)
					q = q[8:]
				}
				var err error
				if tfhdFlags&0x02 != 0 {
					if _, err = take(); err != nil {
						return err
					}
				}
				if tfhdFlags&0x08 != 0 {
					if defDur, err = take(); err != nil {
						return err
					}
				}
				if tfhdFlags&0x10 != 0 {
					if defSize, err = take(); err != nil {
						return err
					}
				}
				if tfhdFlags&0x20 != 0 {
					if defFl, err = take(); err != nil {
						return err
					}
				}
				haveTfhd = true
			case "tfdt":
				if len(p) < 8 {
					return errors.New("short tfdt")
				}
				if p[0] == 1 {
					if len(p) < 12 {
						return errors.New("short tfdt")
					}
					tfdt = binary.BigEndian.Uint64(p[4:])
				} else {
					tfdt = uint64(binary.BigEndian.Uint32(p[4:]))
				}
				if tfdt > 1<<62 {
					return errors.New("absurd tfdt")
				}
				haveTfdt = true
			case "trun":
				if !haveTfhd {
					return errors.New("trun before tfhd")
				}
				if len(p) < 8 {
					return errors.New("short trun")
				}
				flags := binary.BigEndian.Uint32(p) & 0xffffff
				count := binary.BigEndian.Uint32(p[4:])
				if count > maxSamples {
					return errors.New("too many samples")
				}
				q := p[8:]
				if flags&0x01 != 0 {
					if len(q) < 4 {
						return errors.New("short trun")
					}
					d := int64(int32(binary.BigEndian.Uint32(q)))
					q = q[4:]
					dataOff = base + d
				} else if dataOff < 0 {
					dataOff = base
				}
				var firstFlags uint32
				haveFirst := flags&0x04 != 0
				if haveFirst {
					if len(q) < 4 {
						return errors.New("short trun")
					}
					firstFlags = binary.BigEndian.Uint32(q)
					q = q[4:]
				}
				entry := 0
				for _, bit := range []uint32{0x100, 0x200, 0x400, 0x800} {
					if flags&bit != 0 {
						entry += 4
					}
				}
				if uint64(len(q)) < uint64(count)*uint64(entry) {
					return errors.New("trun entries truncated")
				}
				var total, dur int64
				samples := int(count)
				if entry == 0 {
					// Every sample takes the defaults: no per-sample work.
					if count > 0 && trackID == videoID && !sawVideo {
						fl := defFl
						if haveFirst {
							fl = firstFlags
						}
						fr.Key = fl&0x10000 == 0
					}
					total, dur = int64(count)*int64(defSize), int64(count)*int64(defDur)
					count = 0
				}
				for i := uint32(0); i < count; i++ {
					d, sz, fl := defDur, defSize, defFl
					if flags&0x100 != 0 {
						d, q = binary.BigEndian.Uint32(q), q[4:]
					}
					if flags&0x200 != 0 {
						sz, q = binary.BigEndian.Uint32(q), q[4:]
					}
					if flags&0x400 != 0 {
						fl, q = binary.BigEndian.Uint32(q), q[4:]
					}
					if flags&0x800 != 0 {
						q = q[4:]
					}
					if i == 0 && haveFirst {
						fl = firstFlags
					}
					if i == 0 && trackID == videoID && !sawVideo {
						fr.Key = fl&0x10000 == 0
					}
					total += int64(sz)
					dur += int64(d)
				}
				if dataOff < dataStart || dataOff+total > dataEnd {
					return fmt.Errorf("track %d samples [%d, %d) outside mdat [%d, %d)", trackID, dataOff, dataOff+total, dataStart, dataEnd)
				}
				dataOff += total
				if trackID == videoID {
					if !sawVideo && haveTfdt {
						fr.Time = int64(tfdt)
					}
					sawVideo = true
					fr.Duration += dur
					fr.samples += samples
				}
			}
			return nil
		})
	})
	return fr, err
}
