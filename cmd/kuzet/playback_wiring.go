package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/store"
	"github.com/kuzet/kuzet/viewer"
	"github.com/kuzet/kuzet/viewer/evidence"
)

// The adapters below give the viewer's recorded playback, downloads and
// evidence export what they read from the recorder: segments with their
// fragment index decoded, gaps with their reasons (segments deleted by
// retention count as gaps), and ranged reads of the object store.

// recordings is viewer.Recordings (and viewer.SpanIndex) backed by the
// recorder's index.
type recordings struct {
	ix  *index.Index
	log *slog.Logger
}

// RecordedSpans returns camera's spans of continuous recording overlapping
// [from, to), merged by the index, for the timeline.
func (r recordings) RecordedSpans(ctx context.Context, camera string, from, to time.Time) ([]viewer.RecordedSpan, error) {
	spans, err := r.ix.Spans(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.RecordedSpan, len(spans))
	for i, s := range spans {
		out[i] = viewer.RecordedSpan{Start: s.Start, End: s.End, Segments: s.Segments, Bytes: s.Bytes}
	}
	return out, nil
}

// RecordedSegments returns camera's segments overlapping [from, to). A
// segment whose fragment index cannot be decoded is returned without
// fragments: readers skip it (and say so), the rest plays.
func (r recordings) RecordedSegments(ctx context.Context, camera string, from, to time.Time) ([]viewer.RecordedSegment, error) {
	segs, err := r.ix.Segments(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.RecordedSegment, 0, len(segs))
	for _, s := range segs {
		if s.Deleting {
			continue // retention is removing it: the object may be gone
		}
		rs := viewer.RecordedSegment{ID: s.ID, Camera: s.Camera, Facility: s.Facility, Run: s.Run, Start: s.Start, End: s.End,
			MediaDuration: s.MediaDuration, Bytes: s.Bytes, Frames: s.Frames, Codec: s.Codec, Width: s.Width, Height: s.Height,
			InitSize: int64(s.InitSize), ObjectKey: s.ObjectKey, SHA256: s.SHA256, PrevChain: s.PrevChain, Chain: s.Chain}
		frags, err := segment.DecodeIndex(s.Fragments, s.Bytes, s.MediaDuration)
		if err != nil && r.log != nil {
			r.log.Warn("segment with a bad fragment index is not played", "camera", camera, "segment", s.ObjectKey, "err", err)
		}
		for _, f := range frags {
			rs.Fragments = append(rs.Fragments, viewer.SegmentFragment{Offset: f.Offset, Size: f.Size, Time: f.Time, Duration: f.Duration, Key: f.Key})
		}
		out = append(out, rs)
	}
	return out, nil
}

// RecordedGaps returns camera's gaps overlapping [from, to), an open one
// ending at to, with the tombstones of deleted segments as gaps of reason
// "deleted".
func (r recordings) RecordedGaps(ctx context.Context, camera string, from, to time.Time) ([]viewer.RecordedGap, error) {
	gaps, err := r.ix.Gaps(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	tombs, err := r.ix.Tombstones(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.RecordedGap, 0, len(gaps)+len(tombs))
	for _, g := range gaps {
		end := g.End
		if end.IsZero() {
			end = to
		}
		out = append(out, viewer.RecordedGap{Start: g.Start, End: end, Reason: g.Reason, Detail: g.Detail})
	}
	for _, t := range tombs {
		out = append(out, viewer.RecordedGap{Start: t.Start, End: t.End, Reason: "deleted",
			Detail: fmt.Sprintf("segment %d deleted (%s) at %s", t.SegmentID, t.Reason, t.DeletedAt.UTC().Format(time.RFC3339))})
	}
	sortGaps(out)
	return out, nil
}

func sortGaps(gs []viewer.RecordedGap) {
	for i := 1; i < len(gs); i++ {
		for j := i; j > 0 && gs[j].Start.Before(gs[j-1].Start); j-- {
			gs[j], gs[j-1] = gs[j-1], gs[j]
		}
	}
}

// recordedSettings are the settings of recorded playback and export (the
// lead maps them from the configuration: export.dir, export.signing_key_file,
// export.max_running, export.max_jobs, export.keep, playback.max_sessions).
type recordedSettings struct {
	// ExportDir is where evidence packages are written. Default
	// ./var/exports.
	ExportDir string
	// SigningKeyFile is the Ed25519 private key (PKCS #8 PEM, made by
	// `kuzet export-key`) that signs packages. Empty: export is off.
	SigningKeyFile string
	MaxRunning     int
	MaxJobs        int
	Keep           time.Duration
	MaxSessions    int
}

// newRecordedFootage builds recorded playback and, with a signing key,
// evidence export. The exporter is nil (its routes answer 503) without a
// key.
func newRecordedFootage(s recordedSettings, ix *index.Index, objects store.Store, live *viewer.Live,
	audit viewer.Auditor, mark viewer.FrameMarkFunc, metrics prometheus.Registerer, log *slog.Logger) (*viewer.Playback, *viewer.Exporter, error) {
	recs := recordings{ix: ix, log: log}
	pb, err := viewer.NewPlayback(viewer.PlaybackConfig{MaxSessions: s.MaxSessions}, viewer.PlaybackDeps{
		Recordings: recs, Objects: objects, Audit: audit, Live: live, FrameMark: mark,
		Metrics: metrics, Log: log.With("component", "playback"),
	})
	if err != nil {
		return nil, nil, err
	}
	if s.SigningKeyFile == "" {
		log.Warn("no export signing key (export.signing_key_file): evidence export is off; make one with kuzet export-key")
		return pb, nil, nil
	}
	key, err := loadSigningKey(s.SigningKeyFile)
	if err != nil {
		return nil, nil, err
	}
	dir := s.ExportDir
	if dir == "" {
		dir = "./var/exports"
	}
	ex, err := viewer.NewExporter(viewer.ExportConfig{Dir: dir, MaxRunning: s.MaxRunning, MaxJobs: s.MaxJobs, Keep: s.Keep,
		Version: softwareVersion()}, viewer.ExportDeps{Recordings: recs, Objects: objects, Audit: audit, Key: key,
		Metrics: metrics, Log: log.With("component", "export")})
	if err != nil {
		return nil, nil, err
	}
	log.Info("evidence export on", "dir", dir, "key", evidence.Fingerprint(key.Public().(ed25519.PublicKey)))
	return pb, ex, nil
}

// loadSigningKey reads the export signing key; a key file readable by
// others is refused.
func loadSigningKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config key \"export.signing_key_file\": %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("config key \"export.signing_key_file\": %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config key \"export.signing_key_file\": %w", err)
	}
	key, err := evidence.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("config key \"export.signing_key_file\": %w", err)
	}
	return key, nil
}

// softwareVersion is the module version and VCS revision of this binary.
func softwareVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += " (modified)"
			}
		}
	}
	return v
}
