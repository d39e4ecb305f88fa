package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"iter"
	"time"
)

// Sentinel errors. Every error returned by a store wraps at most one of
// them; callers branch with errors.Is.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("object not found")
	// ErrHeld: the object is under legal hold, so it cannot be deleted (or,
	// in the fs store, replaced).
	ErrHeld = errors.New("object is under legal hold")
	// ErrUnavailable: the store could not be reached or did not answer in
	// time (connection refused, timeout, 5xx, disk I/O error). The caller
	// keeps the data spooled and retries later.
	ErrUnavailable = errors.New("object store unavailable")
	// ErrIntegrity: the content read from the caller does not have the
	// declared size or SHA-256, or the stored object does not match after
	// upload. Nothing is left under the key by the failed Put. Retrying with
	// the same input fails again: the spool file is damaged.
	ErrIntegrity = errors.New("object content does not match its size or SHA-256")
	// ErrInvalidKey: the key or list prefix is not acceptable (see
	// ValidateKey).
	ErrInvalidKey = errors.New("invalid object key")
	// ErrInvalidRange: a ranged read starts at or after the end of the
	// object, or has a negative offset or a non-positive length.
	ErrInvalidRange = errors.New("invalid byte range")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is the object key.
	Key string
	// Size is the object size in bytes.
	Size int64
	// SHA256 is the SHA-256 of the content when the store knows it: always
	// in the result of Put (verified), from Stat on s3 (kept with the
	// object), never from List, nor from Stat on fs. The zero value means
	// unknown.
	SHA256 [sha256.Size]byte
	// Modified is when the object was stored.
	Modified time.Time
	// Version is the S3 version ID of the object ("" on fs or an
	// unversioned bucket).
	Version string
}

// Store is the operation set both implementations (*FS and *S3) provide,
// so that the composition root can hold either. Consumers declare their own
// smaller interfaces with just the methods they call.
type Store interface {
	// Put stores size bytes read from r under key. sum is the SHA-256 the
	// caller computed when it wrote the data; the content is refused with
	// ErrIntegrity if it does not match, and nothing is left under the key.
	// It returns the verified object.
	Put(ctx context.Context, key string, r io.Reader, size int64, sum [sha256.Size]byte) (ObjectInfo, error)
	// Get opens the whole object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// GetRange opens length bytes at offset (fewer if the object ends
	// first). The caller closes the reader.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes the object.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object, or refuses with ErrHeld.
	Delete(ctx context.Context, key string) error
	// List yields the objects whose keys start with prefix, in ascending
	// byte order of keys, without holding them all in memory. Stopping the
	// loop early stops the listing. A non-nil error ends the sequence.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
	// SetHold puts the object under legal hold (on) or releases it.
	SetHold(ctx context.Context, key string, on bool) error
	// Held reports whether the object is under legal hold.
	Held(ctx context.Context, key string) (bool, error)
	// Ping reports whether the store is reachable and usable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

var (
	_ Store = (*FS)(nil)
	_ Store = (*S3)(nil)
)
