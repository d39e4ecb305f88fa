// Package recorder records every camera's stream into fragmented-MP4
// segments, keeps them durable in a local spool until they are uploaded to
// the object store and indexed in PostgreSQL, and applies retention and
// legal holds.
//
// Data flow (one Recorder per process, one pipeline and one uploader per
// camera):
//
//	ingest.Stream ─Reader─► pipeline ─► segment.Segmenter ─► spool file (fsync ≤ SyncInterval)
//	                           │                                   │ closed
//	                           └─ gap rows ─► journal ◄── uploader ◄┘ Put + SHA-256 verify
//	                                            │
//	                                  applier ──┴─► index (PostgreSQL: segments, gaps, chain)
//
// A segment is removed from the spool only after its object is stored and
// verified (size and SHA-256) and its index row is durable in the journal;
// the journal applier writes rows to PostgreSQL in order, and chains each
// segment to the camera's previous one (see package index for the chain).
// Every second of a camera is in a segment or in a gap row whose reason is
// camera_offline, recorder_down, writer_overload, spool_full,
// discontinuity or disabled.
//
// # Concurrency and backpressure
//
// Run owns every goroutine: per camera a pipeline (started by Record,
// ended by Stop, by the stream closing, or by Run ending) and an uploader;
// and one each of journal applier, heartbeat, retention, hold
// reconciliation and orphan check. Record, Stop, PlaceHold, ReleaseHold,
// ApplyRetention, VerifyChain, CheckOrphans, Health and Ready may be called
// from any goroutine.
//
// A pipeline reads its camera's ingest.Reader (policy
// KeepQueueReportOverload, QueueCapacity items): it never blocks the
// camera. It blocks only on the spool disk (fragment writes, fdatasync
// every SyncInterval, small fsync'ed state and journal records). If it
// falls behind, ingest drops units for it alone and tells it with a
// writer_overload event: the segment is closed and a writer_overload gap
// covers what was lost (kuzet_ingest_reader_dropped_units_total counts
// the units).
//
// Uploads never block recording: closed segments queue in the spool,
// bounded by SpoolQuota. While the store is down, uploaders retry with
// backoff and the backlog grows (kuzet_recorder_upload_backlog_*); when
// it returns, each camera's backlog is uploaded back to back, up to
// UploadConcurrency at once, much faster than real time. Health reports
// the age of the oldest footage not yet uploaded and indexed
// (RecordingLag; per camera kuzet_recorder_recording_lag_seconds) and
// counts failed upload attempts (UploadFailures). While PostgreSQL
// is down, index rows wait in the journal (kuzet_recorder_journal_pending_
// records) and are applied in order when it returns. When the spool is
// full, recording of a camera that needs space stops with a spool_full gap,
// an error log and kuzet_recorder_spool_full_total; it resumes at a
// keyframe once the spool is below ResumeBelow of its quota. Nothing is
// deleted to make room.
//
// Memory per camera is bounded by the reader queue (ingest), one fragment
// of units held by reference (≤ FragmentDuration), the spool file's write
// buffer and a few small slices; it does not grow with the backlog, whose
// bytes stay on disk.
//
// # Crash recovery
//
// On start, Run finishes every spool file left by a stop or crash (cut at
// its last complete fragment, see segment.Scan), queues it for upload,
// closes each camera's crash-interrupted gap at the last heartbeat and
// opens a recorder_down gap from the end of its footage, which the
// camera's first new segment closes. Files it cannot use are moved to
// damaged/ and reported, never deleted. The orphan check compares the
// store with the index after the startup backlog is done, and daily, and
// reports differences (log, kuzet_recorder_orphans, Health).
package recorder
