// Package index is the recorder's catalogue in PostgreSQL: one row per
// stored segment, gap rows that say why there is no footage, tombstones of
// segments deleted by retention, per-camera hash-chain heads, legal holds and
// per-camera retention.
//
// It sits after the spool and the object store in the recorder's flow: a
// segment is indexed only once its object is durable in the store, and the
// recorder feeds every change through its local journal, so Index methods
// that change rows are idempotent (replaying a journal entry that was
// already applied is a no-op).
//
// # Invariants
//
//   - Two segments of one camera never overlap (exclusion constraint on
//     tstzrange(start_at, end_at), btree_gist), nor do two gaps.
//   - For every camera and time range, segments, gaps and tombstones together
//     cover the range from the camera's first footage up to the end of its
//     latest row; an open gap (end NULL) runs until now.
//   - All times are UTC timestamptz with microsecond precision; media
//     durations are 90 kHz ticks.
//
// # Hash chain
//
// Each camera's segments form a chain in the order they are indexed, which
// the recorder keeps equal to their time order:
//
//	chain = SHA-256(prev_chain ‖ sha256 ‖ len(camera) ‖ camera ‖ start ‖ end)
//
// byte for byte:
//
//	prev_chain  32 bytes: the chain of the camera's previous segment, or 32
//	            zero bytes for its first segment
//	sha256      32 bytes: SHA-256 of the whole segment object
//	len(camera)  1 byte: length of the camera id in bytes (1..64)
//	camera      the camera id, ASCII
//	start        8 bytes: start_at as microseconds since 1970-01-01T00:00:00Z,
//	            two's-complement big-endian int64
//	end          8 bytes: end_at, encoded like start
//
// ChainHash computes it. The head of each camera's chain is kept in
// recorder_chain_heads; its row lock serialises inserts of one camera, so the
// chain is computed inside the inserting transaction. Retention moves a
// deleted segment's row to recorder_tombstones with its sha256, prev_chain
// and chain, so the chain stays verifiable across deletions.
//
// # Concurrency
//
// An Index is safe for concurrent use; it holds only the pgx pool. It starts
// no goroutines. Methods block on PostgreSQL; callers bound them with ctx.
package index
