package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Fragment locates one fragment (moof+mdat) in a segment file.
type Fragment struct {
	// Offset and Size are its bytes in the file.
	Offset, Size int64
	// Time is its video decode time from the start of the segment and
	// Duration its video length, both in 90 kHz ticks.
	Time, Duration int64
	// Key is true when its first video sample is a keyframe: playback can
	// start here.
	Key bool
}

// indexVersion is the first byte of an encoded fragment index.
const indexVersion = 1

// EncodeIndex encodes the fragment list of a segment compactly for the
// index row: a version byte, then per fragment uvarint(Δtime<<1 | key) and
// uvarint(Δoffset), deltas from the previous fragment (the first from time
// 0 and offset 0). Sizes and durations follow from the next entry, and for
// the last one from the object size and media duration.
func EncodeIndex(frags []Fragment) []byte {
	b := make([]byte, 0, 1+len(frags)*5)
	b = append(b, indexVersion)
	var t, off int64
	for _, f := range frags {
		k := uint64(0)
		if f.Key {
			k = 1
		}
		b = binary.AppendUvarint(b, uint64(f.Time-t)<<1|k)
		b = binary.AppendUvarint(b, uint64(f.Offset-off))
		t, off = f.Time, f.Offset
	}
	return b
}

// ErrBadIndex is returned by DecodeIndex for bytes it cannot use.
var ErrBadIndex = errors.New("segment: malformed fragment index")

// DecodeIndex decodes an EncodeIndex value of a segment of size bytes and
// mediaDuration ticks. It refuses indexes that are not increasing or that
// point outside the object.
func DecodeIndex(b []byte, size, mediaDuration int64) ([]Fragment, error) {
	if len(b) == 0 || b[0] != indexVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrBadIndex)
	}
	b = b[1:]
	// Each entry takes at least two bytes: this bounds the allocation.
	frags := make([]Fragment, 0, len(b)/2)
	var t, off int64
	for len(b) > 0 {
		dt, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: truncated time", ErrBadIndex)
		}
		b = b[n:]
		doff, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: truncated offset", ErrBadIndex)
		}
		b = b[n:]
		if dt>>1 > uint64(mediaDuration) || doff > uint64(size) {
			return nil, fmt.Errorf("%w: entry beyond the segment", ErrBadIndex)
		}
		nt, noff := t+int64(dt>>1), off+int64(doff)
		if len(frags) > 0 && (noff <= off || nt < t) || noff >= size || nt > mediaDuration {
			return nil, fmt.Errorf("%w: entries not increasing or beyond the segment", ErrBadIndex)
		}
		if len(frags) > 0 {
			frags[len(frags)-1].Size = noff - off
			frags[len(frags)-1].Duration = nt - t
		}
		frags = append(frags, Fragment{Offset: noff, Time: nt, Key: dt&1 == 1})
		t, off = nt, noff
	}
	if len(frags) > 0 {
		frags[len(frags)-1].Size = size - off
		frags[len(frags)-1].Duration = mediaDuration - t
	}
	return frags, nil
}

// Seek returns the fragment to start playback at time t (ticks from the
// segment start): the last keyframe fragment at or before t, or the first
// fragment when none is.
func Seek(frags []Fragment, t int64) (Fragment, bool) {
	var best Fragment
	found := false
	for _, f := range frags {
		if f.Time > t {
			break
		}
		if f.Key || !found {
			best, found = f, true
		}
	}
	if !found && len(frags) > 0 {
		return frags[0], true
	}
	return best, found
}
