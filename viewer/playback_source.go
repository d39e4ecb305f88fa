package viewer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// RecordedSegment is one stored segment of a camera as recorded playback,
// download and export read it: the recorder's index row with its fragment
// index decoded. cmd/kuzet fills it from the recorder.
type RecordedSegment struct {
	ID       int64
	Camera   string
	Facility string
	// Run numbers the camera's continuous recording sessions: segments of
	// one run share their init section.
	Run uint64
	// Start and End are wall times (UTC).
	Start, End time.Time
	// MediaDuration is the video length in 90 kHz ticks.
	MediaDuration int64
	Bytes         int64
	Frames        int
	Codec         string
	Width, Height int
	// InitSize is the length of the init section at the start of the
	// object; Fragments locate its fragments.
	InitSize  int64
	Fragments []SegmentFragment
	ObjectKey string
	// SHA256 is the object's hash taken when it was recorded; PrevChain
	// and Chain its links in the camera's hash chain.
	SHA256, PrevChain, Chain [32]byte
}

// SegmentFragment locates one fragment (moof+mdat) in a segment object.
type SegmentFragment struct {
	// Offset and Size are its bytes in the object.
	Offset, Size int64
	// Time and Duration are its video decode time from the segment's start
	// and its length, in 90 kHz ticks.
	Time, Duration int64
	// Key: its first video sample is a keyframe.
	Key bool
}

// RecordedGap is a span of a camera without footage, with the recorder's
// reason. An open gap (still running) ends at the end of the range asked
// for.
type RecordedGap struct {
	Start, End time.Time
	Reason     string
	Detail     string
}

// Recordings is the recorder's index as playback, download and export read
// it. cmd/kuzet wires it to the recorder. Both methods return the items of
// camera overlapping [from, to), in time order.
type Recordings interface {
	RecordedSegments(ctx context.Context, camera string, from, to time.Time) ([]RecordedSegment, error)
	RecordedGaps(ctx context.Context, camera string, from, to time.Time) ([]RecordedGap, error)
}

// ObjectReader reads byte ranges of stored segment objects (the recorder's
// object store). The caller closes the reader.
type ObjectReader interface {
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// errNoFootage: nothing was recorded in the range asked for.
var errNoFootage = errors.New("no footage was recorded in this range")

// wallAt maps a decode time in the segment (90 kHz ticks from its start) to
// wall time, linearly between the segment's start and end.
func (s *RecordedSegment) wallAt(ticks int64) time.Time {
	if s.MediaDuration <= 0 {
		return s.Start
	}
	span := s.End.Sub(s.Start)
	return s.Start.Add(time.Duration(math.Round(float64(span) * float64(ticks) / float64(s.MediaDuration))))
}

// ticksAt is the inverse of wallAt.
func (s *RecordedSegment) ticksAt(t time.Time) int64 {
	span := s.End.Sub(s.Start)
	if span <= 0 {
		return 0
	}
	return int64(math.Round(float64(t.Sub(s.Start)) * float64(s.MediaDuration) / float64(span)))
}

// startFragment returns the index of the fragment to start at for wall time
// t: the last keyframe fragment at or before t, or the first keyframe
// fragment when none is; -1 when the segment has no keyframe fragment.
func (s *RecordedSegment) startFragment(t time.Time) int {
	at := s.ticksAt(t)
	best := -1
	for i, f := range s.Fragments {
		if f.Time > at && best >= 0 {
			break
		}
		if f.Key {
			best = i
		}
	}
	return best
}

// check refuses a segment row playback cannot use.
func (s *RecordedSegment) check() error {
	switch {
	case s.ObjectKey == "":
		return errors.New("segment without object key")
	case !s.End.After(s.Start) || s.MediaDuration <= 0:
		return fmt.Errorf("segment %s has no duration", s.ObjectKey)
	case s.InitSize <= 0 || s.InitSize > maxInitBytes || s.InitSize >= s.Bytes:
		return fmt.Errorf("segment %s has an init section of %d bytes", s.ObjectKey, s.InitSize)
	}
	prev := s.InitSize
	for _, f := range s.Fragments {
		if f.Offset < prev || f.Size <= 0 || f.Offset+f.Size > s.Bytes {
			return fmt.Errorf("segment %s: fragment index out of order or outside the object", s.ObjectKey)
		}
		prev = f.Offset + f.Size
	}
	return nil
}

// readRange reads [off, off+n) of an object whole.
func readRange(ctx context.Context, objects ObjectReader, key string, off, n int64) ([]byte, error) {
	rc, err := objects.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("%s [%d, %d): %w", key, off, off+n, err)
	}
	return b, nil
}
