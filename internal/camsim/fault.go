package camsim

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultKind names a fault the simulator can inject.
type FaultKind string

// Fault kinds.
const (
	// FaultDrop closes the camera's sessions (Camera.DropSessions); with
	// For, the camera also refuses new sessions for that long
	// (Camera.Offline).
	FaultDrop FaultKind = "drop"
	// FaultStall sends nothing for For, keeping sessions open (Camera.Stall).
	FaultStall FaultKind = "stall"
	// FaultSSRC switches to a new SSRC (Camera.ChangeSSRC).
	FaultSSRC FaultKind = "ssrc"
	// FaultTimestampJump adds Ticks to the RTP timestamps
	// (Camera.JumpTimestamp).
	FaultTimestampJump FaultKind = "tsjump"
	// FaultGarbage sends Count malformed RTP packets to each session
	// (Camera.SendGarbage).
	FaultGarbage FaultKind = "garbage"
	// FaultLoss skips Count video RTP packets, leaving a sequence gap
	// (Camera.LosePackets).
	FaultLoss FaultKind = "loss"
	// FaultClockSkew sets the camera's clock, as its RTCP sender reports
	// show it, Offset away from true time; with For, only for that long
	// (Camera.SkewClock).
	FaultClockSkew FaultKind = "skew"
)

// MaxClockSkew bounds Fault.Offset and Camera.SkewClock either way: about a
// century, which still reaches a camera whose clock fell back to 1970.
const MaxClockSkew = 100 * 365 * 24 * time.Hour

// minFaultPeriod bounds how often a fault may repeat.
const minFaultPeriod = 100 * time.Millisecond

// Fault is a scheduled fault injection.
type Fault struct {
	Kind FaultKind
	// Cameras lists the camera numbers the fault applies to; empty means
	// every camera.
	Cameras []int
	// At is when the fault first fires, after the camera started (server
	// start). Default 0.
	At time.Duration
	// Every repeats the fault with this period; 0 fires it once.
	Every time.Duration
	// For is how long a stall lasts (required), how long a dropped camera
	// refuses new sessions (optional), or how long a clock skew lasts
	// (optional; without it the skew stays).
	For time.Duration
	// Ticks is the timestamp jump in 90 kHz ticks (tsjump; default 900000,
	// 10 s).
	Ticks uint32
	// Count is the number of malformed (garbage) or lost (loss) packets;
	// default 10.
	Count int
	// Offset is the clock skew (skew; required, non-zero, may be negative:
	// the camera's clock behind), at most MaxClockSkew either way.
	Offset time.Duration
}

// FaultSyntax documents ParseFault's input, for command-line help.
const FaultSyntax = `KIND [cams=LIST] [at=DUR] [every=DUR] [for=DUR] [ticks=N] [count=N] [offset=DUR]
  KIND is one of:
    drop     close the sessions; with for=DUR also refuse new ones (503) that long
    stall    send nothing for for=DUR (required), keeping sessions open;
             the clip then resumes and RTP timestamps jump by DUR
    ssrc     switch to a new SSRC (sequence numbers and timestamps continue)
    tsjump   add ticks=N (90 kHz, default 900000 = 10 s) to the RTP timestamps
    garbage  send count=N (default 10) malformed RTP packets to each session
    loss     skip the next count=N (default 10) video RTP packets (a sequence gap)
    skew     set the camera's clock offset=DUR (required; negative: behind) from
             true time in its RTCP sender reports, at once; with for=DUR only
             that long (without, the skew stays)
  cams=LIST  cameras, e.g. 3 or 1,4-6 or all (default all)
  at=DUR     first injection after server start, e.g. 30s (default 0s)
  every=DUR  repeat with this period (default: once; at least 100ms)
  Examples: "drop cams=2,5-7 at=30s every=1m for=10s"
            "skew cams=4 at=1m for=2m offset=5s"`

// ParseFault parses one fault specification; see FaultSyntax.
func ParseFault(spec string) (Fault, error) {
	fields := strings.Fields(spec)
	if len(fields) == 0 {
		return Fault{}, errors.New("fault: empty specification")
	}
	f := Fault{Kind: FaultKind(fields[0])}
	switch f.Kind {
	case FaultDrop, FaultStall, FaultSSRC, FaultTimestampJump, FaultGarbage, FaultLoss, FaultClockSkew:
	default:
		return Fault{}, fmt.Errorf("fault %q: unknown kind %q (want drop, stall, ssrc, tsjump, garbage, loss or skew)", spec, fields[0])
	}
	seen := map[string]bool{}
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return Fault{}, fmt.Errorf("fault %q: %q is not key=value", spec, kv)
		}
		if seen[k] {
			return Fault{}, fmt.Errorf("fault %q: %s given twice", spec, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "cams":
			f.Cameras, err = ParseCameraList(v)
		case "at":
			f.At, err = parseDuration(v)
		case "every":
			f.Every, err = parseDuration(v)
		case "for":
			f.For, err = parseDuration(v)
		case "ticks":
			if f.Kind != FaultTimestampJump {
				return Fault{}, fmt.Errorf("fault %q: ticks applies to tsjump only", spec)
			}
			var t uint64
			t, err = strconv.ParseUint(v, 10, 32)
			if err == nil && t == 0 {
				err = errors.New("must be positive")
			}
			f.Ticks = uint32(t)
		case "count":
			if f.Kind != FaultGarbage && f.Kind != FaultLoss {
				return Fault{}, fmt.Errorf("fault %q: count applies to garbage and loss only", spec)
			}
			f.Count, err = strconv.Atoi(v)
			if err == nil && (f.Count <= 0 || f.Count > 10000) {
				err = errors.New("must be 1..10000")
			}
		case "offset":
			if f.Kind != FaultClockSkew {
				return Fault{}, fmt.Errorf("fault %q: offset applies to skew only", spec)
			}
			f.Offset, err = time.ParseDuration(v)
			if err == nil && f.Offset == 0 {
				err = errors.New("must not be zero")
			}
		default:
			return Fault{}, fmt.Errorf("fault %q: unknown key %q", spec, k)
		}
		if err != nil {
			return Fault{}, fmt.Errorf("fault %q: %s: %w", spec, k, err)
		}
	}
	if err := f.validate(); err != nil {
		return Fault{}, fmt.Errorf("fault %q: %w", spec, err)
	}
	return f, nil
}

// validate checks f and fills defaults.
func (f *Fault) validate() error {
	switch f.Kind {
	case FaultDrop, FaultSSRC:
	case FaultStall:
		if f.For <= 0 {
			return errors.New("stall needs for=DUR")
		}
	case FaultTimestampJump:
		if f.Ticks == 0 {
			f.Ticks = 10 * videoClockRate
		}
	case FaultGarbage, FaultLoss:
		if f.Count == 0 {
			f.Count = 10
		}
	case FaultClockSkew:
		if f.Offset == 0 {
			return errors.New("skew needs offset=DUR")
		}
		if f.Offset > MaxClockSkew || f.Offset < -MaxClockSkew {
			return fmt.Errorf("offset beyond %v", MaxClockSkew)
		}
	default:
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	if f.For != 0 && f.Kind != FaultDrop && f.Kind != FaultStall && f.Kind != FaultClockSkew {
		return fmt.Errorf("for applies to drop, stall and skew only")
	}
	if f.Offset != 0 && f.Kind != FaultClockSkew {
		return fmt.Errorf("offset applies to skew only")
	}
	if f.At < 0 || f.For < 0 {
		return errors.New("negative duration")
	}
	if f.Every != 0 && f.Every < minFaultPeriod {
		return fmt.Errorf("every must be at least %v", minFaultPeriod)
	}
	if f.Every != 0 && f.For >= f.Every {
		return errors.New("for must be shorter than every")
	}
	for _, n := range f.Cameras {
		if n < 1 {
			return fmt.Errorf("camera %d: cameras are numbered from 1", n)
		}
	}
	return nil
}

func (f *Fault) applies(camera int) bool {
	return len(f.Cameras) == 0 || slices.Contains(f.Cameras, camera)
}

// String returns f in ParseFault's syntax.
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	if len(f.Cameras) > 0 {
		b.WriteString(" cams=")
		for i, n := range f.Cameras {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(n))
		}
	}
	fmt.Fprintf(&b, " at=%v", f.At)
	if f.Every > 0 {
		fmt.Fprintf(&b, " every=%v", f.Every)
	}
	if f.For > 0 {
		fmt.Fprintf(&b, " for=%v", f.For)
	}
	if f.Kind == FaultTimestampJump {
		fmt.Fprintf(&b, " ticks=%d", f.Ticks)
	}
	if f.Kind == FaultGarbage || f.Kind == FaultLoss {
		fmt.Fprintf(&b, " count=%d", f.Count)
	}
	if f.Kind == FaultClockSkew {
		fmt.Fprintf(&b, " offset=%v", f.Offset)
	}
	return b.String()
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("negative duration")
	}
	return d, nil
}

// maxCameraNumber bounds camera numbers in lists.
const maxCameraNumber = 100000

// ParseCameraList parses a camera list such as "3", "1,4-6" or "all" into
// sorted, distinct camera numbers; "all" yields nil (every camera).
func ParseCameraList(s string) ([]int, error) {
	if s == "all" {
		return nil, nil
	}
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 1 || a > maxCameraNumber {
			return nil, fmt.Errorf("camera list %q: bad camera %q", s, lo)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
			if err != nil || b < a || b > maxCameraNumber {
				return nil, fmt.Errorf("camera list %q: bad range %q", s, part)
			}
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
		if len(out) > maxCameraNumber {
			return nil, fmt.Errorf("camera list %q: too many cameras", s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
