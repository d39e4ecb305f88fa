package viewer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"
)

// A playback session is driven over its WebRTC data channel: the browser
// sends commands as JSON text messages, the server sends events.
//
// Commands:
//
//	{"op":"play"}                                resume (at the end: start over)
//	{"op":"pause"}
//	{"op":"seek","at":"2025-03-10T09:31:00Z"}    every camera, from the keyframe at or before
//	{"op":"speed","speed":4}                     0.5 to 8; above 2 only keyframes are sent
//	{"op":"step","frames":1}                     paused: the next frame (-1: the previous one)
//
// Events (each with "type"):
//
//	state     {"playing", "speed", "at"}: after every command and when the channel opens
//	position  {"at", "playing", "speed", "cameras":[{"camera","at","mark","state"}]}: several times a second;
//	          a camera's "at" is the capture time of the last frame sent, "mark" the capture time
//	          embedded in that frame (when the camera embeds one), "state" playing, gap or ended
//	gap       {"camera","from","to","reason","detail"}: a camera reaches a span without footage
//	skip      {"from","to"}: no camera has footage: the clock jumps to the next footage
//	end       the footage of every camera ends: playback pauses
//	error     {"camera","detail"}: footage that could not be read (skipped)

// Limits of the control channel.
const (
	playMaxCommandBytes = 1024
	playMinSpeed        = 0.5
	playMaxSpeed        = 8
	// playKeyOnlySpeed: faster than this, only keyframes are sent.
	playKeyOnlySpeed = 2
)

// playCommand is one command from the browser.
type playCommand struct {
	Op     string    `json:"op"`
	At     time.Time `json:"at,omitzero"`
	Speed  float64   `json:"speed,omitempty"`
	Frames int       `json:"frames,omitempty"`
}

// errPlayCommand wraps every refusal of parsePlayCommand.
var errPlayCommand = errors.New("bad playback command")

// parsePlayCommand decodes a command from untrusted bytes: one JSON object
// of known fields, an op from the list, the fields it needs and no others,
// in range. It never panics.
func parsePlayCommand(b []byte) (playCommand, error) {
	var c playCommand
	bad := func(format string, a ...any) (playCommand, error) {
		return playCommand{}, fmt.Errorf("%w: %s", errPlayCommand, fmt.Sprintf(format, a...))
	}
	if len(b) > playMaxCommandBytes || !utf8.Valid(b) {
		return bad("longer than %d bytes or not UTF-8", playMaxCommandBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return bad("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the command")
	}
	hasAt, hasSpeed, hasFrames := !c.At.IsZero(), c.Speed != 0, c.Frames != 0
	switch c.Op {
	case "play", "pause":
		if hasAt || hasSpeed || hasFrames {
			return bad("%s takes no arguments", c.Op)
		}
	case "seek":
		if !hasAt || hasSpeed || hasFrames {
			return bad("seek takes at, only")
		}
		if c.At.Year() < 2000 || c.At.Year() > 9999 {
			return bad("seek to %s: out of range", c.At)
		}
		c.At = c.At.UTC()
	case "speed":
		if hasAt || hasFrames || math.IsNaN(c.Speed) || c.Speed < playMinSpeed || c.Speed > playMaxSpeed {
			return bad("speed must be from %g to %g", float64(playMinSpeed), float64(playMaxSpeed))
		}
	case "step":
		if hasAt || hasSpeed || (c.Frames != 1 && c.Frames != -1) {
			return bad("step takes frames 1 or -1")
		}
	default:
		return bad("unknown op %q", c.Op)
	}
	return c, nil
}

// Events.

type playStateEvent struct {
	Type    string    `json:"type"` // state
	Playing bool      `json:"playing"`
	Speed   float64   `json:"speed"`
	At      time.Time `json:"at"`
}

type playCameraPosition struct {
	Camera string     `json:"camera"`
	At     *time.Time `json:"at"`
	Mark   *time.Time `json:"mark"`
	State  string     `json:"state"` // playing, gap, ended
}

type playPositionEvent struct {
	Type    string               `json:"type"` // position
	At      time.Time            `json:"at"`
	Playing bool                 `json:"playing"`
	Speed   float64              `json:"speed"`
	Cameras []playCameraPosition `json:"cameras"`
}

type playGapEvent struct {
	Type   string    `json:"type"` // gap
	Camera string    `json:"camera"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
}

type playSkipEvent struct {
	Type string    `json:"type"` // skip
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

type playSimpleEvent struct {
	Type   string `json:"type"` // end, error
	Camera string `json:"camera,omitempty"`
	Detail string `json:"detail,omitempty"`
}
