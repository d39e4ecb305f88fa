// Package store keeps recorded segments in object storage.
//
// It sits at the end of the recorder's write path: segment → local spool
// (fsync) → store.Put → segment index. The spool stays the source of truth
// until Put has returned the verified object and the index row is
// committed. The viewer reads segments back with Get and GetRange (seeking
// playback), retention and the orphan sweep use List and Delete, evidence
// holds use SetHold.
//
// Two implementations share one contract (the Store interface, checked by
// one conformance test suite):
//
//   - S3 (minio-go) for any S3-compatible service. Uploads carry the
//     SHA-256 the recorder computed at write time, so the service verifies
//     the content (one PUT with x-amz-checksum-sha256 up to
//     MultipartThreshold; above it, parts with SHA-256 trailers and the
//     whole-object hash checked before completing), and each upload is
//     verified afterwards with a HEAD (size, and the service's SHA-256
//     checksum). Legal hold is S3 Object Lock legal hold: on a bucket
//     created with object lock, the service itself refuses to delete a
//     held object version, to anyone, storage administrators included.
//   - FS, a local directory, the embedded default. Writes go to a
//     temporary file in the object's directory, are fsynced, renamed into
//     place, and the directory is fsynced. Keys are paths below the root;
//     all access goes through an os.Root. Legal hold is a marker file
//     beside the object, which Delete (and a replacing Put) honours. An fs
//     hold protects only against Kuzet itself: anyone with access to the
//     directory can still delete the file. Use S3 with object lock where
//     holds must stand against administrators.
//
// Keys are validated the same way by both (ValidateKey): no empty, "." or
// ".." segments, no leading "/", no backslash, NUL or control characters.
// SegmentKey builds segment keys without personal data:
// FACILITY/CAMERA/YYYY/MM/DD/HH/<start>-<run>-<seq>.mp4, in UTC, with
// <start> as 20261121T152200.000Z so keys sort in time order.
//
// Errors wrap one of the sentinels where callers branch: ErrNotFound,
// ErrHeld (delete refused by a hold), ErrUnavailable (store unreachable or
// failing: keep spooling and retry later), ErrIntegrity (content does not
// match its SHA-256: the spool file is damaged, retrying will not help),
// ErrInvalidKey, ErrInvalidRange. Credentials never appear in errors or
// logs.
//
// Concurrency and backpressure: all methods are safe for concurrent use
// and start no goroutines that outlive the call (apart from the S3 HTTP
// client's pooled connections, which Close releases). Every call blocks its
// caller and no more: nothing is queued or dropped here, the recorder's
// spool is the buffer. Calls are bounded in time so that an outage turns
// into ErrUnavailable instead of a hang: on S3, connecting and each
// request's response are bounded by RequestTimeout (each request tried
// MaxAttempts times), metadata operations as a whole by RequestTimeout,
// a Put by RequestTimeout + size/MinUploadRate; Get/GetRange bodies and
// List as a whole are bounded by the caller's context. Memory per call is
// bounded: Put streams (no object is buffered), List reads one page (S3) or
// one directory (fs) at a time.
//
// Metrics (NewMetrics, registered on the registerer passed in):
// kuzet_store_upload_seconds{outcome}, kuzet_store_uploaded_bytes_total,
// kuzet_store_operation_errors_total{op,outcome}.
package store
