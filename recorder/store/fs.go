package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FSConfig configures the local-directory store.
type FSConfig struct {
	// Dir is the directory that holds the objects. It is created (mode
	// 0750) if missing. Required.
	Dir string
}

const (
	fsTempPrefix = ".tmp-"  // temporary files of Puts in flight
	fsHoldPrefix = ".hold." // hold markers: .hold.<name> beside <name>
	fsCopyBuffer = 256 << 10
)

// FS is an object store in a local directory, the embedded default. Key
// a/b/c is the file DIR/a/b/c; all file access goes through an os.Root, so
// nothing outside DIR is touched even if a symbolic link inside points out.
//
// A Put writes a temporary file in the object's directory, fsyncs it,
// renames it over the key and fsyncs the directory, so after Put returns the
// object survives a crash, and a crash during Put leaves no partial object
// (only a .tmp- file, which List ignores and a later Sweep removes).
//
// Legal holds are marker files; see the package documentation for what they
// do not protect against.
type FS struct {
	root *os.Root
	log  *slog.Logger
	m    *Metrics

	// mu orders the short metadata steps that must not interleave: the
	// hold check and rename of Put, the hold check and remove of Delete,
	// hold changes, and creating directories (Put) against pruning empty
	// ones (Delete). Data is copied outside it.
	mu sync.Mutex
}

// NewFS opens (creating if needed) the store directory. log and m may be
// nil.
func NewFS(cfg FSConfig, log *slog.Logger, m *Metrics) (*FS, error) {
	if cfg.Dir == "" {
		return nil, errors.New("store fs: dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("store fs: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("store fs: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = newUnregisteredMetrics()
	}
	return &FS{root: root, log: log, m: m}, nil
}

// Close releases the directory handle.
func (s *FS) Close() error { return s.root.Close() }

// Put implements Store. A held object cannot be replaced (ErrHeld).
func (s *FS) Put(ctx context.Context, key string, r io.Reader, size int64, sum [sha256.Size]byte) (ObjectInfo, error) {
	start := time.Now()
	info, err := s.put(ctx, key, r, size, sum)
	return info, s.m.observePut(start, size, err)
}

func (s *FS) put(ctx context.Context, key string, r io.Reader, size int64, sum [sha256.Size]byte) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("store fs: put: %w", err)
	}
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("store fs: put %q: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("store fs: put %q: %w", key, err)
	}
	dir := path.Dir(key)
	if dir == "." {
		dir = ""
	}

	s.mu.Lock()
	err := s.mkdirs(dir)
	var f *os.File
	var tmp string
	if err == nil {
		tmp, f, err = s.createTemp(dir)
	}
	s.mu.Unlock()
	if err != nil {
		return ObjectInfo{}, fsErr("put", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			if err := s.root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("store fs: removing temporary file", "file", tmp, "err", err)
			}
		}
	}()

	v := newVerifier(ctx, r, size)
	buf := make([]byte, fsCopyBuffer)
	if _, err := io.CopyBuffer(onlyWriter{f}, v, buf); err != nil {
		if v.rerr != nil || ctx.Err() != nil {
			return ObjectInfo{}, fmt.Errorf("store fs: put %q: reading content: %w", key, err)
		}
		return ObjectInfo{}, fsErr("put", key, err)
	}
	if err := v.check(size, sum); err != nil {
		return ObjectInfo{}, fmt.Errorf("store fs: put %q: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return ObjectInfo{}, fsErr("put", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		return ObjectInfo{}, fsErr("put", key, err)
	}
	if err := f.Close(); err != nil {
		return ObjectInfo{}, fsErr("put", key, err)
	}
	if st.Size() != size {
		return ObjectInfo{}, fmt.Errorf("store fs: put %q: %w: wrote %d bytes, want %d", key, ErrIntegrity, st.Size(), size)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if held, err := s.held(key); err != nil {
		return ObjectInfo{}, fsErr("put", key, err)
	} else if held {
		return ObjectInfo{}, fmt.Errorf("store fs: put %q: replacing: %w", key, ErrHeld)
	}
	if err := s.root.Rename(tmp, key); err != nil {
		return ObjectInfo{}, fsErr("put", key, err)
	}
	committed = true
	if err := s.syncDir(dir); err != nil {
		// The object is complete but its directory entry may not be
		// durable yet; report failure so the caller keeps its spool copy.
		return ObjectInfo{}, fsErr("put", key, err)
	}
	return ObjectInfo{Key: key, Size: size, SHA256: sum, Modified: st.ModTime()}, nil
}

// onlyWriter hides *os.File's ReadFrom so that io.CopyBuffer uses the
// buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// mkdirs creates dir and its parents below the root, fsyncing the parent of
// each directory it creates. Called with mu held.
func (s *FS) mkdirs(dir string) error {
	if dir == "" {
		return nil
	}
	segs := strings.Split(dir, "/")
	for i := range segs {
		p := strings.Join(segs[:i+1], "/")
		err := s.root.Mkdir(p, 0o750)
		switch {
		case err == nil:
			if err := s.syncDir(path.Dir(p)); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			st, err := s.root.Stat(p)
			if err != nil {
				return err
			}
			if !st.IsDir() {
				return fmt.Errorf("%w: %q is an object, not a directory", ErrInvalidKey, p)
			}
		default:
			return err
		}
	}
	return nil
}

// createTemp creates a new temporary file in dir.
func (s *FS) createTemp(dir string) (string, *os.File, error) {
	for range 10 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		name := path.Join(dir, fsTempPrefix+hex.EncodeToString(b[:]))
		f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, errors.New("cannot create a unique temporary file")
}

// syncDir fsyncs a directory ("" or "." is the root).
func (s *FS) syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func holdMarker(key string) string {
	dir, name := path.Split(key)
	return dir + fsHoldPrefix + name
}

// held reports whether key has a hold marker.
func (s *FS) held(key string) (bool, error) {
	_, err := s.root.Lstat(holdMarker(key))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// statObject returns the file info of the object at key, ErrNotFound if
// there is no regular file there.
func (s *FS) statObject(key string) (fs.FileInfo, error) {
	st, err := s.root.Stat(key)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrNotFound)
	}
	return st, nil
}

func fsInfo(key string, st fs.FileInfo) ObjectInfo {
	return ObjectInfo{Key: key, Size: st.Size(), Modified: st.ModTime()}
}

// Get implements Store. The reader is the open file.
func (s *FS) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	f, st, err := s.open(ctx, "get", key)
	if err != nil {
		return nil, ObjectInfo{}, s.m.observe("get", err)
	}
	return f, fsInfo(key, st), nil
}

// GetRange implements Store.
func (s *FS) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length <= 0 {
		return nil, s.m.observe("get_range", fmt.Errorf("store fs: get %q: %w: offset %d length %d", key, ErrInvalidRange, offset, length))
	}
	f, st, err := s.open(ctx, "get_range", key)
	if err != nil {
		return nil, s.m.observe("get_range", err)
	}
	if offset >= st.Size() {
		f.Close()
		return nil, s.m.observe("get_range", fmt.Errorf("store fs: get %q: %w: offset %d of a %d-byte object", key, ErrInvalidRange, offset, st.Size()))
	}
	length = min(length, st.Size()-offset)
	return sectionReadCloser{io.NewSectionReader(f, offset, length), f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

func (s *FS) open(ctx context.Context, op, key string) (*os.File, fs.FileInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, nil, fmt.Errorf("store fs: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("store fs: %s %q: %w", op, key, err)
	}
	f, err := s.root.Open(key)
	if err != nil {
		return nil, nil, fsErr(op, key, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%w: not a regular file", ErrNotFound)
	}
	if err != nil {
		f.Close()
		return nil, nil, fsErr(op, key, err)
	}
	return f, st, nil
}

// Stat implements Store. SHA256 is not known (zero).
func (s *FS) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, s.m.observe("stat", fmt.Errorf("store fs: stat: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, s.m.observe("stat", fmt.Errorf("store fs: stat %q: %w", key, err))
	}
	st, err := s.statObject(key)
	if err != nil {
		return ObjectInfo{}, s.m.observe("stat", fsErr("stat", key, err))
	}
	return fsInfo(key, st), nil
}

// Delete implements Store: ErrHeld if the object has a hold marker. Empty
// directories left behind are removed.
func (s *FS) Delete(ctx context.Context, key string) error {
	return s.m.observe("delete", s.delete(ctx, key))
}

func (s *FS) delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("store fs: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store fs: delete %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.statObject(key); err != nil {
		return fsErr("delete", key, err)
	}
	if held, err := s.held(key); err != nil {
		return fsErr("delete", key, err)
	} else if held {
		return fmt.Errorf("store fs: delete %q: %w", key, ErrHeld)
	}
	if err := s.root.Remove(key); err != nil {
		return fsErr("delete", key, err)
	}
	dir := path.Dir(key)
	if err := s.syncDir(dir); err != nil {
		return fsErr("delete", key, err)
	}
	// Prune directories this delete emptied; a directory still holding
	// anything (objects, markers, temporary files) stays.
	for dir != "." {
		if err := s.root.Remove(dir); err != nil {
			break
		}
		dir = path.Dir(dir)
		if err := s.syncDir(dir); err != nil {
			s.log.Warn("store fs: syncing directory", "dir", dir, "err", err)
			break
		}
	}
	return nil
}

// SetHold implements Store with a marker file beside the object.
func (s *FS) SetHold(ctx context.Context, key string, on bool) error {
	return s.m.observe("set_hold", s.setHold(ctx, key, on))
}

func (s *FS) setHold(ctx context.Context, key string, on bool) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("store fs: hold: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store fs: hold %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.statObject(key); err != nil {
		return fsErr("hold", key, err)
	}
	marker := holdMarker(key)
	if on {
		f, err := s.root.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return fsErr("hold", key, err)
		}
		_, err = io.WriteString(f, "legal hold\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fsErr("hold", key, err)
		}
	} else if err := s.root.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fsErr("release hold", key, err)
	}
	if err := s.syncDir(path.Dir(key)); err != nil {
		return fsErr("hold", key, err)
	}
	return nil
}

// Held implements Store.
func (s *FS) Held(ctx context.Context, key string) (bool, error) {
	if err := ValidateKey(key); err != nil {
		return false, s.m.observe("held", fmt.Errorf("store fs: held: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return false, s.m.observe("held", fmt.Errorf("store fs: held %q: %w", key, err))
	}
	if _, err := s.statObject(key); err != nil {
		return false, s.m.observe("held", fsErr("held", key, err))
	}
	held, err := s.held(key)
	if err != nil {
		return false, s.m.observe("held", fsErr("held", key, err))
	}
	return held, nil
}

// List implements Store. It reads one directory at a time, so memory is
// bounded by the largest directory (one camera-hour with segment keys),
// not by the number of objects.
func (s *FS) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if err := validatePrefix(prefix); err != nil {
			yield(ObjectInfo{}, s.m.observe("list", fmt.Errorf("store fs: list: %w", err)))
			return
		}
		dir, namePrefix := path.Split(prefix)
		s.walk(ctx, strings.TrimSuffix(dir, "/"), namePrefix, yield)
	}
}

// walk yields the objects below dir whose first name component starts with
// namePrefix, in key order. It returns false when the sequence must stop.
func (s *FS) walk(ctx context.Context, dir, namePrefix string, yield func(ObjectInfo, error) bool) bool {
	fail := func(err error) bool {
		yield(ObjectInfo{}, s.m.observe("list", err))
		return false
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("store fs: list %q: %w", dir, err))
	}
	name := dir
	if name == "" {
		name = "."
	}
	d, err := s.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return true
	}
	if err != nil {
		return fail(fsErr("list", dir, err))
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return true
		}
		return fail(fsErr("list", dir, err))
	}
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool {
		n := e.Name()
		return !strings.HasPrefix(n, namePrefix) || ValidateKey(n) != nil || !(e.IsDir() || e.Type().IsRegular())
	})
	// Key order: a directory sorts as its name followed by "/".
	sortName := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortName(a), sortName(b)) })
	for _, e := range entries {
		key := e.Name()
		if dir != "" {
			key = dir + "/" + key
		}
		if e.IsDir() {
			if !s.walk(ctx, key, "", yield) {
				return false
			}
			continue
		}
		st, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return fail(fsErr("list", key, err))
		}
		if !yield(fsInfo(key, st), nil) {
			return false
		}
	}
	return true
}

// Ping implements Store: the directory exists and a file can be created in
// it.
func (s *FS) Ping(ctx context.Context) error {
	return s.m.observe("ping", s.ping(ctx))
}

func (s *FS) ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store fs: ping: %w", err)
	}
	name, f, err := s.createTemp("")
	if err != nil {
		return fsErr("ping", "", err)
	}
	f.Close()
	if err := s.root.Remove(name); err != nil {
		return fsErr("ping", "", err)
	}
	return nil
}

// Sweep removes temporary files older than age left by Puts interrupted by
// a crash. Call it at startup, before Puts start, or with an age well above
// the longest Put.
func (s *FS) Sweep(ctx context.Context, age time.Duration) (removed int, err error) {
	cutoff := time.Now().Add(-age)
	err = fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), fsTempPrefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil || st.ModTime().After(cutoff) {
			return nil
		}
		if err := s.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("store fs: sweep: %w", err)
	}
	return removed, nil
}

// fsErr wraps a file system error with the operation and key, mapping
// missing files to ErrNotFound and failing disks to ErrUnavailable.
func fsErr(op, key string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalidKey), errors.Is(err, ErrHeld):
		return fmt.Errorf("store fs: %s %q: %w", op, key, err)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("store fs: %s %q: %w", op, key, ErrNotFound)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EIO), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.ESTALE), errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("store fs: %s %q: %w: %w", op, key, ErrUnavailable, err)
	default:
		return fmt.Errorf("store fs: %s %q: %w", op, key, err)
	}
}
