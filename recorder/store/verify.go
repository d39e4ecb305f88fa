package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// verifier reads at most size bytes from the caller's reader, hashing them,
// and remembers its own read error so that a failing spool file is not
// mistaken for a failing store. Reads fail once ctx ends.
type verifier struct {
	ctx  context.Context
	r    io.Reader
	h    hash.Hash
	n    int64
	rerr error // error of the caller's reader, not io.EOF
	eof  bool  // the reader (or the size limit) ended
}

func newVerifier(ctx context.Context, r io.Reader, size int64) *verifier {
	return &verifier{ctx: ctx, r: io.LimitReader(r, size), h: sha256.New()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.h.Write(p[:n])
		v.n += int64(n)
	}
	switch {
	case err == io.EOF:
		v.eof = true
	case err != nil:
		v.rerr = err
	}
	return n, err
}

// sum returns the SHA-256 of what was read.
func (v *verifier) sum() (s [sha256.Size]byte) {
	v.h.Sum(s[:0])
	return s
}

// short reports whether the reader ended before size bytes.
func (v *verifier) short(size int64) bool { return v.eof && v.n < size }

// check reports whether exactly size bytes with SHA-256 want were read.
func (v *verifier) check(size int64, want [sha256.Size]byte) error {
	if v.n != size {
		return fmt.Errorf("%w: read %d bytes, want %d", ErrIntegrity, v.n, size)
	}
	if got := v.sum(); got != want {
		return fmt.Errorf("%w: content SHA-256 %s, want %s", ErrIntegrity, shortHex(got), shortHex(want))
	}
	return nil
}

func shortHex(s [sha256.Size]byte) string { return hex.EncodeToString(s[:8]) }
