package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// maxRecord bounds one journal record (a segment row with its fragment
// index is a few KiB).
const maxRecord = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one journal entry.
type Record struct {
	Seq  uint64
	Data []byte
}

// Journal is the durable queue of index changes that are not yet applied to
// PostgreSQL. Each record is framed as length (uint32 BE), CRC-32C of the
// data (uint32 BE), data; it is fdatasync'ed before Append returns. On open,
// a torn or corrupt tail (a crash during Append) is cut off and counted in
// Torn. Every record in the file is pending until Done: applying must be
// idempotent, because a crash after applying and before Done replays it.
// When nothing is pending the file is truncated to zero.
type Journal struct {
	path string

	mu      sync.Mutex
	f       *os.File
	size    int64
	next    uint64
	pending []Record
	notify  chan struct{}
	// Torn is the number of bytes cut from the tail on open.
	Torn int64
}

// OpenJournal opens the journal in the spool and loads its pending
// records.
func (s *Spool) OpenJournal() (*Journal, error) {
	return OpenJournal(filepath.Join(s.cfg.Dir, "journal", "index.log"))
}

// OpenJournal opens (creating) the journal file at path.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{path: path, f: f, notify: make(chan struct{}, 1), next: 1}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	var off int64
	var hdr [8]byte
	for off < st.Size() {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			break
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		sum := binary.BigEndian.Uint32(hdr[4:])
		if n > maxRecord || off+8+n > st.Size() {
			break
		}
		data := make([]byte, n)
		if _, err := f.ReadAt(data, off+8); err != nil {
			break
		}
		if crc32.Checksum(data, castagnoli) != sum {
			break
		}
		j.pending = append(j.pending, Record{Seq: j.next, Data: data})
		j.next++
		off += 8 + n
	}
	if off < st.Size() {
		j.Torn = st.Size() - off
		if err := f.Truncate(off); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: cut torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	j.size = off
	if len(j.pending) > 0 {
		j.notify <- struct{}{}
	}
	return j, nil
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("journal: closed")

// Append writes data as a new record, syncs it and returns its sequence
// number.
func (j *Journal) Append(data []byte) (uint64, error) {
	if len(data) > maxRecord {
		return 0, fmt.Errorf("journal: record of %d bytes too large", len(data))
	}
	buf := make([]byte, 8+len(data))
	binary.BigEndian.PutUint32(buf, uint32(len(data)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(data, castagnoli))
	copy(buf[8:], data)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return 0, ErrClosed
	}
	if _, err := j.f.WriteAt(buf, j.size); err != nil {
		// Cut whatever part was written so the next append starts clean.
		_ = j.f.Truncate(j.size)
		return 0, fmt.Errorf("journal: append: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		_ = j.f.Truncate(j.size)
		return 0, fmt.Errorf("journal: sync: %w", err)
	}
	j.size += int64(len(buf))
	seq := j.next
	j.next++
	j.pending = append(j.pending, Record{Seq: seq, Data: buf[8:]})
	select {
	case j.notify <- struct{}{}:
	default:
	}
	return seq, nil
}

// First returns the oldest pending record.
func (j *Journal) First() (Record, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) == 0 {
		return Record{}, false
	}
	return j.pending[0], true
}

// Done marks the oldest pending record, which must have sequence number
// seq, as applied. When nothing is pending any more the file is emptied.
func (j *Journal) Done(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) == 0 || j.pending[0].Seq != seq {
		return fmt.Errorf("journal: done %d is not the oldest pending record", seq)
	}
	j.pending[0] = Record{}
	j.pending = j.pending[1:]
	if len(j.pending) == 0 && j.f != nil {
		j.pending = nil
		if err := j.f.Truncate(0); err != nil {
			return fmt.Errorf("journal: truncate: %w", err)
		}
		if err := fdatasync(j.f); err != nil {
			return fmt.Errorf("journal: truncate: %w", err)
		}
		j.size = 0
	}
	return nil
}

// Len returns the number of pending records.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// Pending returns a copy of the pending records.
func (j *Journal) Pending() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Record(nil), j.pending...)
}

// Wait returns a channel that receives after an Append.
func (j *Journal) Wait() <-chan struct{} { return j.notify }

// Close closes the file; pending records stay in it for the next open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

var _ io.Closer = (*Journal)(nil)
