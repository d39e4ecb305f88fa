package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// State is what the recorder must remember about a camera across a crash
// even when PostgreSQL is unreachable: how far its history is covered, the
// gap that is open, and the last run number used.
type State struct {
	Camera   string `json:"camera"`
	Facility string `json:"facility"`
	// Cursor is the end of the camera's latest segment or closed gap:
	// the next row starts here.
	Cursor time.Time `json:"cursor,omitzero"`
	// OpenGap, when set, is a gap from OpenGapStart that is still open.
	OpenGap      string    `json:"open_gap,omitempty"`
	OpenGapStart time.Time `json:"open_gap_start,omitzero"`
	// Run is the last run number used.
	Run uint64 `json:"run"`
}

func (s *Spool) statePath(camera string) string {
	return filepath.Join(s.cfg.Dir, "state", camera+".json")
}

// SaveState records st durably.
func (s *Spool) SaveState(st State) error {
	if !validID(st.Camera) {
		return fmt.Errorf("spool: invalid camera id %q", st.Camera)
	}
	if err := writeJSON(s.statePath(st.Camera), st); err != nil {
		return fmt.Errorf("spool: state of %s: %w", st.Camera, err)
	}
	return nil
}

// LoadState returns the recorded state of camera; ok is false when there
// is none.
func (s *Spool) LoadState(camera string) (st State, ok bool, err error) {
	if !validID(camera) {
		return st, false, fmt.Errorf("spool: invalid camera id %q", camera)
	}
	b, err := os.ReadFile(s.statePath(camera))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return State{}, false, fmt.Errorf("spool: state of %s: %w", camera, err)
	}
	return st, true, nil
}

// States returns the recorded state of every camera.
func (s *Spool) States() ([]State, error) {
	des, err := os.ReadDir(filepath.Join(s.cfg.Dir, "state"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []State
	for _, d := range des {
		cam, ok := strings.CutSuffix(d.Name(), ".json")
		if !ok || !validID(cam) {
			continue
		}
		st, ok, err := s.LoadState(cam)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// Beat records that the recorder is alive at now. It is written in place
// and synced: after a crash, the last beat bounds when the recorder died.
func (s *Spool) Beat(now time.Time) error {
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, "heartbeat"), os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("spool: heartbeat: %w", err)
	}
	defer f.Close()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(now.UnixMicro()))
	if _, err := f.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: heartbeat: %w", err)
	}
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("spool: heartbeat: %w", err)
	}
	return nil
}

// LastBeat returns the last recorded heartbeat (zero when none).
func (s *Spool) LastBeat() (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, "heartbeat"))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("spool: heartbeat: %w", err)
	}
	if len(b) < 8 {
		return time.Time{}, nil
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC(), nil
}
