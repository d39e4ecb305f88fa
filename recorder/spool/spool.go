package spool

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Config configures a Spool.
type Config struct {
	// Dir is the spool directory, created if missing. Required.
	Dir string
	// Quota is the most segment data the spool may hold, in bytes.
	// Default 10 GiB.
	Quota int64
	// SyncInterval is the longest time written segment data stays
	// unsynced. Default 2s.
	SyncInterval time.Duration
	// BufferSize is the write buffer of a segment file. Default 64 KiB.
	BufferSize int
}

// ErrFull is returned by Reserve when the quota would be exceeded.
var ErrFull = errors.New("spool: quota exceeded")

// Spool is an open spool directory.
type Spool struct {
	cfg  Config
	used atomic.Int64
}

// Open opens (creating) the spool directory and accounts the segment files
// already in it against the quota.
func Open(cfg Config) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: dir is required")
	}
	if cfg.Quota <= 0 {
		cfg.Quota = 10 << 30
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 2 * time.Second
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 64 << 10
	}
	for _, d := range []string{"segments", "damaged", "journal", "state"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	s := &Spool{cfg: cfg}
	var used int64
	err := filepath.WalkDir(filepath.Join(cfg.Dir, "segments"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".mp4") {
			st, err := d.Info()
			if err != nil {
				return err
			}
			used += st.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.used.Store(used)
	return s, nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.cfg.Dir }

// Quota returns the quota in bytes.
func (s *Spool) Quota() int64 { return s.cfg.Quota }

// Used returns the bytes of segment data accounted.
func (s *Spool) Used() int64 { return s.used.Load() }

// Reserve accounts n more bytes, or refuses with ErrFull.
func (s *Spool) Reserve(n int64) error {
	for {
		u := s.used.Load()
		if u+n > s.cfg.Quota {
			return fmt.Errorf("%w: %d of %d bytes used, %d more asked", ErrFull, u, s.cfg.Quota, n)
		}
		if s.used.CompareAndSwap(u, u+n) {
			return nil
		}
	}
}

// Release returns n bytes to the quota.
func (s *Spool) Release(n int64) { s.used.Add(-n) }

// Meta describes a segment file. The identity fields are written when the
// file is created; the rest when it is finished.
type Meta struct {
	Camera     string    `json:"camera"`
	Facility   string    `json:"facility"`
	Run        uint64    `json:"run"`
	Seq        uint64    `json:"seq"`
	Start      time.Time `json:"start"`
	MediaStart int64     `json:"media_start"`
	Codec      string    `json:"codec"`
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	AudioCodec string    `json:"audio_codec,omitempty"`
	InitSize   int       `json:"init_size"`

	// Set by Finish.
	Closed        bool      `json:"closed,omitempty"`
	End           time.Time `json:"end,omitzero"`
	MediaDuration int64     `json:"media_duration,omitempty"`
	Frames        int       `json:"frames,omitempty"`
	Bytes         int64     `json:"bytes,omitempty"`
	SHA256        string    `json:"sha256,omitempty"`    // hex
	Fragments     []byte    `json:"fragments,omitempty"` // segment.EncodeIndex
	// Recovered is set when crash recovery finished the file.
	Recovered bool `json:"recovered,omitempty"`
}

// Name returns the file name stem of a segment: run and seq, zero padded
// so that names sort in recording order.
func Name(run, seq uint64) string { return fmt.Sprintf("%020d-%06d", run, seq) }

func (s *Spool) cameraDir(camera string) string {
	return filepath.Join(s.cfg.Dir, "segments", camera)
}

// File is a segment file being written.
type File struct {
	s        *Spool
	f        *os.File
	bw       *bufio.Writer
	meta     Meta
	path     string
	size     int64
	lastSync time.Time
	dirty    bool
}

// Create starts a segment file for meta (its identity fields), writing
// the metadata first so that recovery knows what the file is.
func (s *Spool) Create(meta Meta, now time.Time) (*File, error) {
	if !validID(meta.Camera) {
		return nil, fmt.Errorf("spool: invalid camera id %q", meta.Camera)
	}
	dir := s.cameraDir(meta.Camera)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	meta.Closed = false
	base := filepath.Join(dir, Name(meta.Run, meta.Seq))
	if err := writeJSON(base+".json", meta); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	f, err := os.OpenFile(base+".mp4", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		_ = os.Remove(base + ".json")
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &File{s: s, f: f, bw: bufio.NewWriterSize(f, s.cfg.BufferSize), meta: meta, path: base + ".mp4", lastSync: now}, nil
}

// Write appends to the file's buffer.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.bw.Write(p)
	f.size += int64(n)
	f.dirty = f.dirty || n > 0
	return n, err
}

// Size returns the bytes written so far.
func (f *File) Size() int64 { return f.size }

// Path returns the data file's path.
func (f *File) Path() string { return f.path }

// Flush hands the buffer to the operating system and fdatasyncs the file
// when the last sync is SyncInterval old. It returns whether it synced.
func (f *File) Flush(now time.Time) (synced bool, err error) {
	if err := f.bw.Flush(); err != nil {
		return false, fmt.Errorf("spool: write %s: %w", f.path, err)
	}
	if f.dirty && now.Sub(f.lastSync) >= f.s.cfg.SyncInterval {
		return true, f.sync(now)
	}
	return false, nil
}

// SyncIfDue syncs already flushed data when the last sync is SyncInterval
// old; callers run it from a timer so that data never waits longer when
// no new fragment comes.
func (f *File) SyncIfDue(now time.Time) error {
	_, err := f.Flush(now)
	return err
}

func (f *File) sync(now time.Time) error {
	if err := fdatasync(f.f); err != nil {
		return fmt.Errorf("spool: sync %s: %w", f.path, err)
	}
	f.lastSync, f.dirty = now, false
	return nil
}

// Finish flushes and syncs the data, closes it, and records the closed
// metadata. A file without any fragment (meta.Frames 0) is removed
// instead, releasing its bytes. It returns the finished entry (zero when
// removed).
func (f *File) Finish(meta Meta, now time.Time) (Entry, error) {
	err := f.bw.Flush()
	if err == nil {
		err = f.sync(now)
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Entry{}, fmt.Errorf("spool: finish %s: %w", f.path, err)
	}
	base := strings.TrimSuffix(f.path, ".mp4")
	if meta.Frames == 0 {
		f.s.Release(f.size)
		_ = os.Remove(f.path)
		_ = os.Remove(base + ".json")
		return Entry{}, nil
	}
	meta.Closed = true
	if err := writeJSON(base+".json", meta); err != nil {
		return Entry{}, fmt.Errorf("spool: finish %s: %w", f.path, err)
	}
	return Entry{Meta: meta, Path: f.path, Size: f.size}, nil
}

// Entry is a segment file in the spool.
type Entry struct {
	Meta Meta
	Path string // data file
	Size int64  // data file size
}

// MetaPath returns the metadata file of the entry.
func (e Entry) MetaPath() string { return strings.TrimSuffix(e.Path, ".mp4") + ".json" }

// Entries lists the segment files in the spool, per camera in recording
// order. Files whose metadata cannot be read are returned with only Path
// and Size set, and a name-derived Run and Seq when possible, for recovery
// to report.
func (s *Spool) Entries() ([]Entry, error) {
	root := filepath.Join(s.cfg.Dir, "segments")
	cams, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []Entry
	for _, c := range cams {
		if !c.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, c.Name()))
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		names := map[string]bool{}
		for _, f := range files {
			n := f.Name()
			if stem, ok := strings.CutSuffix(n, ".mp4"); ok {
				names[stem] = true
			} else if stem, ok := strings.CutSuffix(n, ".json"); ok {
				names[stem] = names[stem] || false
			}
		}
		stems := make([]string, 0, len(names))
		for n := range names {
			stems = append(stems, n)
		}
		sort.Strings(stems)
		for _, stem := range stems {
			base := filepath.Join(root, c.Name(), stem)
			e := Entry{Path: base + ".mp4"}
			if st, err := os.Stat(e.Path); err == nil {
				e.Size = st.Size()
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("spool: %w", err)
			} else {
				e.Size = -1 // metadata without data
			}
			b, err := os.ReadFile(base + ".json")
			if err == nil {
				err = json.Unmarshal(b, &e.Meta)
			}
			if err != nil || e.Meta.Camera != c.Name() {
				e.Meta = Meta{Camera: c.Name()}
				if r, sq, ok := strings.Cut(stem, "-"); ok {
					e.Meta.Run, _ = strconv.ParseUint(r, 10, 64)
					e.Meta.Seq, _ = strconv.ParseUint(sq, 10, 64)
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Remove deletes an uploaded segment file and its metadata and releases
// its bytes.
func (s *Spool) Remove(e Entry) error {
	if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(e.MetaPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	if e.Size > 0 {
		s.Release(e.Size)
	}
	return nil
}

// Rewrite records new metadata for an entry (recovery closing a file).
func (s *Spool) Rewrite(e Entry) error {
	if err := writeJSON(e.MetaPath(), e.Meta); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Truncate cuts a segment file to size bytes (recovery dropping an
// incomplete fragment), syncs it and releases the bytes cut.
func (s *Spool) Truncate(e *Entry, size int64) error {
	if size >= e.Size {
		return nil
	}
	f, err := os.OpenFile(e.Path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("spool: truncate %s: %w", e.Path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: truncate %s: %w", e.Path, err)
	}
	s.Release(e.Size - size)
	e.Size = size
	return nil
}

// Quarantine moves a segment file recovery cannot use (and its metadata)
// to damaged/, releasing its bytes from the quota; it returns the new
// path. Nothing is deleted.
func (s *Spool) Quarantine(e Entry) (string, error) {
	dir := filepath.Join(s.cfg.Dir, "damaged", e.Meta.Camera)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	dst := filepath.Join(dir, filepath.Base(e.Path))
	if e.Size >= 0 {
		if err := os.Rename(e.Path, dst); err != nil {
			return "", fmt.Errorf("spool: quarantine %s: %w", e.Path, err)
		}
	}
	if err := os.Rename(e.MetaPath(), strings.TrimSuffix(dst, ".mp4")+".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("spool: quarantine %s: %w", e.MetaPath(), err)
	}
	if e.Size > 0 {
		s.Release(e.Size)
	}
	return dst, nil
}

// Open opens an entry's data for reading.
func (e Entry) Open() (*os.File, error) { return os.Open(e.Path) }

func validID(id string) bool {
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

// writeJSON writes v to path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
