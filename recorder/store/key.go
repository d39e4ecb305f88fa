package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxKeyLen is the longest key accepted, in bytes (the S3 limit).
const MaxKeyLen = 1024

// ValidateKey reports (wrapping ErrInvalidKey) whether key is acceptable to
// every store: 1 to MaxKeyLen bytes of UTF-8, segments separated by "/",
// none empty (so no leading, trailing or doubled "/"), none starting with
// "." (so no "." or "..", and names beginning with "." stay free for the fs
// store's temporary files and hold markers), and no backslash, NUL or other
// control character. A valid key cannot name anything outside the store's
// root.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	return validatePath(key, false)
}

// validatePrefix is ValidateKey for a list prefix: it may be empty, and its
// last segment may be empty (a prefix ending in "/") or partial.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validatePath(prefix, true)
}

func validatePath(p string, prefix bool) error {
	if len(p) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidKey)
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			return fmt.Errorf("%w: %q contains a backslash", ErrInvalidKey, p)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: %q contains a control character", ErrInvalidKey, p)
		}
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "" && prefix && last:
			// "a/b/" lists everything under a/b.
		case s == "":
			return fmt.Errorf("%w: %q has an empty segment", ErrInvalidKey, p)
		case s[0] == '.':
			return fmt.Errorf("%w: %q has a segment starting with '.'", ErrInvalidKey, p)
		}
	}
	return nil
}

// ValidID reports whether id is a facility or camera id usable in a key:
// 1 to 64 characters of [A-Za-z0-9_-].
func ValidID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// startLayout is the segment start time in keys: UTC, millisecond
// precision, fixed width, so keys sort in time order.
const startLayout = "20060102T150405.000Z"

// SegmentName is what a segment's object key is made of. Keys carry no
// personal data: only the facility and camera ids, the start time and the
// run and sequence numbers.
//
// The key is FACILITY/CAMERA/YYYY/MM/DD/HH/<start>-<run>-<seq>.mp4, the
// directories and <start> in UTC, <start> as 20261121T152200.000Z
// (milliseconds, truncated), <run> in decimal and <seq> in decimal padded to
// at least six digits, e.g.
//
//	F16/cam-03/2026/11/21/15/20261121T152200.000Z-7-000042.mp4
type SegmentName struct {
	Facility string    // [A-Za-z0-9_-]{1,64}
	Camera   string    // [A-Za-z0-9_-]{1,64}
	Start    time.Time // wall time of the segment's first sample; years 1000..9999
	Run      uint64    // run (continuous timeline) number within the camera
	Seq      uint64    // segment number within the run
}

// Key returns the object key of the segment.
func (n SegmentName) Key() (string, error) {
	prefix, err := CameraPrefix(n.Facility, n.Camera)
	if err != nil {
		return "", err
	}
	t := n.Start.UTC().Truncate(time.Millisecond)
	if y := t.Year(); y < 1000 || y > 9999 {
		return "", fmt.Errorf("%w: segment start %s out of range", ErrInvalidKey, t.Format(time.RFC3339))
	}
	return fmt.Sprintf("%s%s/%s-%d-%06d.mp4", prefix, t.Format("2006/01/02/15"), t.Format(startLayout), n.Run, n.Seq), nil
}

// SegmentKey is SegmentName{...}.Key().
func SegmentKey(facility, camera string, start time.Time, run, seq uint64) (string, error) {
	return SegmentName{Facility: facility, Camera: camera, Start: start, Run: run, Seq: seq}.Key()
}

// CameraPrefix returns the key prefix of all segments of a camera,
// "FACILITY/CAMERA/", for List.
func CameraPrefix(facility, camera string) (string, error) {
	if !ValidID(facility) {
		return "", fmt.Errorf("%w: facility id %q is not [A-Za-z0-9_-]{1,64}", ErrInvalidKey, facility)
	}
	if !ValidID(camera) {
		return "", fmt.Errorf("%w: camera id %q is not [A-Za-z0-9_-]{1,64}", ErrInvalidKey, camera)
	}
	return facility + "/" + camera + "/", nil
}

// ParseSegmentKey is the inverse of SegmentName.Key: it accepts exactly the
// keys Key produces and returns ErrInvalidKey for anything else.
func ParseSegmentKey(key string) (SegmentName, error) {
	bad := func(why string) (SegmentName, error) {
		return SegmentName{}, fmt.Errorf("%w: %q is not a segment key: %s", ErrInvalidKey, key, why)
	}
	if len(key) > MaxKeyLen {
		return bad("too long")
	}
	parts := strings.Split(key, "/")
	if len(parts) != 7 {
		return bad("want 7 segments")
	}
	name, ok := strings.CutSuffix(parts[6], ".mp4")
	if !ok {
		return bad("no .mp4 suffix")
	}
	fields := strings.Split(name, "-")
	if len(fields) != 3 {
		return bad("want <start>-<run>-<seq>")
	}
	start, err := time.Parse(startLayout, fields[0])
	if err != nil {
		return bad("bad start time")
	}
	run, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return bad("bad run")
	}
	seq, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return bad("bad seq")
	}
	n := SegmentName{Facility: parts[0], Camera: parts[1], Start: start, Run: run, Seq: seq}
	canon, err := n.Key()
	if err != nil {
		return SegmentName{}, fmt.Errorf("%q is not a segment key: %w", key, err)
	}
	if canon != key {
		return bad("not in canonical form")
	}
	return n, nil
}
