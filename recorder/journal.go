package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/kuzet/kuzet/recorder/index"
)

// Kinds of journaled index changes.
const (
	opSegment  = "segment"   // insert a segment row (chained at insert)
	opGapOpen  = "gap_open"  // insert a gap; open when Gap.End is zero
	opGapClose = "gap_close" // end the open gap of Camera that began at Start
)

// op is one journal record: an index change.
type op struct {
	Kind    string         `json:"kind"`
	Segment *index.Segment `json:"segment,omitempty"`
	Gap     *index.Gap     `json:"gap,omitempty"`
	Camera  string         `json:"camera,omitempty"`
	Start   time.Time      `json:"start,omitzero"`
	End     time.Time      `json:"end,omitzero"`
}

// journalOp appends o to the journal; the applier writes it to
// PostgreSQL in order.
func (r *Recorder) journalOp(o op) error {
	_, err := r.journalSeq(o)
	return err
}

// journalSeq is journalOp returning the record's sequence number.
func (r *Recorder) journalSeq(o op) (uint64, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return 0, fmt.Errorf("recorder: journal: %w", err)
	}
	seq, err := r.journal.Append(b)
	if err != nil {
		return 0, fmt.Errorf("recorder: %w", err)
	}
	r.m.journal.Set(float64(r.journal.Len()))
	return seq, nil
}

// applyJournal writes journal records to the index, oldest first, until
// ctx ends. While PostgreSQL is unavailable it retries with backoff; a
// record PostgreSQL refuses (a constraint violation: a bug or a clock
// gone wild) is logged, counted, kept in journal/rejected.log and skipped,
// so it cannot block the records behind it.
func (r *Recorder) applyJournal(ctx context.Context) {
	backoff := r.cfg.RetryMin
	for {
		rec, ok := r.journal.First()
		if !ok {
			r.m.journal.Set(0)
			select {
			case <-ctx.Done():
				return
			case <-r.journal.Wait():
				continue
			}
		}
		var o op
		err := json.Unmarshal(rec.Data, &o)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err = r.apply(actx, o)
			cancel()
		} else {
			err = &index.ValidationError{Msg: "undecodable journal record: " + err.Error()}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !index.IsPermanent(err) {
			r.indexResult(err)
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(backoff*2, r.cfg.RetryMax)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		backoff = r.cfg.RetryMin
		if err != nil {
			r.reject(rec.Data, err)
		} else {
			r.indexResult(nil)
		}
		if derr := r.journal.Done(rec.Seq); derr != nil {
			r.log.Error("recorder: journal", "err", derr)
		}
		r.journalDone.Store(rec.Seq)
		r.m.journal.Set(float64(r.journal.Len()))
		if o.Kind == opSegment && err == nil {
			select {
			case r.holdsWake <- struct{}{}:
			default:
			}
		}
	}
}

func (r *Recorder) apply(ctx context.Context, o op) error {
	switch o.Kind {
	case opSegment:
		if o.Segment == nil {
			return &index.ValidationError{Msg: "segment record without segment"}
		}
		_, err := r.ix.InsertSegment(ctx, o.Segment)
		return err
	case opGapOpen:
		if o.Gap == nil {
			return &index.ValidationError{Msg: "gap record without gap"}
		}
		return r.ix.OpenGap(ctx, *o.Gap)
	case opGapClose:
		return r.ix.CloseGap(ctx, o.Camera, o.Start, o.End)
	}
	return &index.ValidationError{Msg: fmt.Sprintf("unknown journal record kind %q", o.Kind)}
}

// reject keeps a refused record for people and reports it.
func (r *Recorder) reject(data []byte, why error) {
	r.m.rejected.Inc()
	path := filepath.Join(r.spool.Dir(), "journal", "rejected.log")
	line, _ := json.Marshal(struct {
		At     time.Time       `json:"at"`
		Error  string          `json:"error"`
		Record json.RawMessage `json:"record"`
	}{r.now().UTC(), why.Error(), json.RawMessage(validJSON(data))})
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	r.log.Error("recorder: PostgreSQL refused an index change; kept in rejected.log", "err", why, "file", path, "write_err", err)
}

func validJSON(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}
