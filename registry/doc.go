// Package registry is Kuzet's system of record: facilities and their zones,
// cameras (with credentials sealed at rest), prisoners and their movements,
// incidents, users with their sessions and API tokens; the one authorisation
// Policy; and the append-only, hash-chained audit log.
//
// It is a leaf of the data flow: ingest, recorder, viewer and alerts may
// import it, it imports none of them. What it needs from them it declares
// (HoldPlacer, implemented by the recorder and wired in cmd/kuzet).
//
// Schema: versioned SQL migrations embedded in the binary (Migrations),
// applied with internal/migrate by `kuzet migrate` and at start.
//
// Every change goes through one transaction that also appends its audit row;
// the audit row is written last, under a row lock on audit_chain_head, so
// the chain stays linear across nodes and the lock is held only until
// commit. If the audit row cannot be written the change is rolled back:
// nothing happens unaudited. Legal holds of serious incidents are placed
// through the HoldPlacer inside the incident's transaction, before the
// chain lock is taken; a hold that fails aborts the change (holds already
// placed at the recorder stay: over-retaining is the safe side).
//
// Concurrency: Registry, Audit and Policy are safe for concurrent use. The
// package starts no goroutines. The login limiter keeps a bounded in-memory
// table (at most 4096 client addresses; when full, ended windows are swept
// and then the oldest is dropped); per-user-name lockout lives in
// PostgreSQL, so it holds across nodes.
package registry
