package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)

func TestSegmentFileLifecycleAndQuota(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Quota: 1000, SyncInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{Camera: "cam-1", Facility: "f16", Run: 3, Seq: 0, Start: t0, Codec: "H264"}
	f, err := s.Create(meta, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(500); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	if _, err := f.Write(make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	// Flushed but not synced before SyncInterval; synced after.
	if synced, err := f.Flush(t0.Add(time.Second)); err != nil || synced {
		t.Fatalf("early flush: synced=%v err=%v", synced, err)
	}
	if st, _ := os.Stat(f.Path()); st.Size() != 600 {
		t.Fatalf("flush did not reach the file: %d bytes", st.Size())
	}
	if synced, err := f.Flush(t0.Add(2 * time.Second)); err != nil || !synced {
		t.Fatalf("due flush: synced=%v err=%v", synced, err)
	}
	// Before Finish the entry is open (for recovery).
	es, err := s.Entries()
	if err != nil || len(es) != 1 || es[0].Meta.Closed || es[0].Meta.Run != 3 || es[0].Size != 600 {
		t.Fatalf("open entry: %+v %v", es, err)
	}
	meta.Frames, meta.Bytes, meta.End = 10, 600, t0.Add(time.Second)
	e, err := f.Finish(meta, t0.Add(3*time.Second))
	if err != nil || !e.Meta.Closed || e.Size != 600 {
		t.Fatalf("finish: %+v %v", e, err)
	}
	es, _ = s.Entries()
	if len(es) != 1 || !es[0].Meta.Closed || !es[0].Meta.End.Equal(t0.Add(time.Second)) {
		t.Fatalf("closed entry: %+v", es)
	}
	// A reopened spool accounts the file.
	s2, err := Open(Config{Dir: dir, Quota: 1000})
	if err != nil || s2.Used() != 600 {
		t.Fatalf("reopen: used %d err %v", s2.Used(), err)
	}
	if err := s.Remove(e); err != nil || s.Used() != 0 {
		t.Fatalf("remove: used %d err %v", s.Used(), err)
	}
	if es, _ := s.Entries(); len(es) != 0 {
		t.Fatalf("entries after remove: %+v", es)
	}
	// An empty segment disappears at Finish.
	f, err = s.Create(Meta{Camera: "cam-1", Run: 3, Seq: 1, Start: t0}, t0)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Reserve(10)
	f.Write(make([]byte, 10))
	if e, err := f.Finish(Meta{Camera: "cam-1", Run: 3, Seq: 1}, t0); err != nil || e.Path != "" || s.Used() != 0 {
		t.Fatalf("empty finish: %+v used %d err %v", e, s.Used(), err)
	}
	if _, err := s.Create(Meta{Camera: "../x"}, t0); err == nil {
		t.Fatal("bad camera id accepted")
	}
}

func TestEntriesOrderTruncateQuarantine(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), Quota: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range [][2]uint64{{10, 1}, {2, 5}, {10, 0}} {
		f, err := s.Create(Meta{Camera: "c", Run: rs[0], Seq: rs[1], Start: t0}, t0)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Reserve(100)
		f.Write(make([]byte, 100))
		f.bw.Flush()
		f.f.Close()
	}
	es, err := s.Entries()
	if err != nil || len(es) != 3 {
		t.Fatal(es, err)
	}
	var order []string
	for _, e := range es {
		order = append(order, Name(e.Meta.Run, e.Meta.Seq))
	}
	if got := strings.Join(order, " "); got != Name(2, 5)+" "+Name(10, 0)+" "+Name(10, 1) {
		t.Fatalf("order %s", got)
	}
	e := es[0]
	if err := s.Truncate(&e, 40); err != nil || e.Size != 40 || s.Used() != 240 {
		t.Fatalf("truncate: size %d used %d err %v", e.Size, s.Used(), err)
	}
	// Damaged metadata is still listed, identified by name.
	if err := os.WriteFile(es[1].MetaPath(), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	es2, _ := s.Entries()
	if es2[1].Meta.Run != 10 || es2[1].Meta.Seq != 0 || es2[1].Meta.Camera != "c" {
		t.Fatalf("damaged meta entry: %+v", es2[1])
	}
	dst, err := s.Quarantine(es2[1])
	if err != nil || s.Used() != 140 {
		t.Fatalf("quarantine: used %d err %v", s.Used(), err)
	}
	if _, err := os.Stat(dst); err != nil || !strings.Contains(dst, filepath.Join("damaged", "c")) {
		t.Fatalf("quarantined file %s: %v", dst, err)
	}
}

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a", "bb", "ccc"} {
		if _, err := j.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	r, ok := j.First()
	if !ok || string(r.Data) != "a" || r.Seq != 1 {
		t.Fatalf("first: %+v", r)
	}
	if err := j.Done(2); err == nil {
		t.Fatal("done out of order accepted")
	}
	if err := j.Done(1); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// A torn append: half a record at the end.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0, 0, 0, 9, 1, 2, 3, 4, 'x'})
	f.Close()
	j, err = OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	// All three records are pending again (Done is not persisted) and the
	// torn tail is gone.
	var got []string
	for _, r := range j.Pending() {
		got = append(got, string(r.Data))
	}
	if strings.Join(got, ",") != "a,bb,ccc" || j.Torn != 9 {
		t.Fatalf("reopened: %v torn %d", got, j.Torn)
	}
	if _, err := j.Append([]byte("dddd")); err != nil {
		t.Fatal(err)
	}
	for _, r := range j.Pending() {
		if err := j.Done(r.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatalf("drained journal is %d bytes", st.Size())
	}
	// A flipped bit is caught by the checksum.
	j.Append([]byte("eeee"))
	j.Close()
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 1
	os.WriteFile(path, b, 0o644)
	j, err = OpenJournal(path)
	if err != nil || j.Len() != 0 || j.Torn != int64(len(b)) {
		t.Fatalf("corrupt record: len %d torn %d err %v", j.Len(), j.Torn, err)
	}
	j.Close()
	if _, err := j.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestStateAndHeartbeat(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LoadState("c1"); ok || err != nil {
		t.Fatalf("missing state: ok=%v err=%v", ok, err)
	}
	st := State{Camera: "c1", Facility: "f", Cursor: t0, OpenGap: "camera_offline", OpenGapStart: t0, Run: 4}
	if err := s.SaveState(st); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.LoadState("c1")
	if err != nil || !ok || got.Run != 4 || !got.Cursor.Equal(t0) || got.OpenGap != "camera_offline" {
		t.Fatalf("state: %+v %v", got, err)
	}
	all, err := s.States()
	if err != nil || len(all) != 1 {
		t.Fatalf("states: %+v %v", all, err)
	}
	if b, err := s.LastBeat(); err != nil || !b.IsZero() {
		t.Fatalf("no beat yet: %v %v", b, err)
	}
	now := t0.Add(1234567 * time.Microsecond)
	if err := s.Beat(now); err != nil {
		t.Fatal(err)
	}
	if b, err := s.LastBeat(); err != nil || !b.Equal(now) {
		t.Fatalf("beat: %v %v", b, err)
	}
}
