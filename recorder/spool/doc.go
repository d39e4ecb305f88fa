// Package spool is the recorder's local, durable staging area: segment
// files being written or waiting for upload, the index journal, per-camera
// state and the recorder's heartbeat, all under one directory.
//
// It sits between the segmenter and the object store. The spool is the
// source of truth for a segment until the object is uploaded, verified and
// its index row is durable (in PostgreSQL or in the journal); only then is
// the spool file removed.
//
// Layout under Dir:
//
//	segments/CAMERA/RRRRRRRRRRRRRRRRRRRR-SSSSSS.mp4   segment data (fMP4)
//	segments/CAMERA/RRRRRRRRRRRRRRRRRRRR-SSSSSS.json  its metadata (Meta)
//	damaged/...                                       files recovery could not use, kept for people
//	journal/index.log                                 index journal (Journal)
//	state/CAMERA.json                                 per-camera cursor (State)
//	heartbeat                                         the recorder's latest sign of life
//
// Durability: segment data is written through a buffer that is flushed at
// every fragment and fdatasync'ed at least every Config.SyncInterval and at
// close; metadata, state and journal records are fsync'ed before the call
// that writes them returns (metadata and state by write-to-temporary,
// fsync, rename, fsync of the directory).
//
// Quota: Reserve accounts every byte before it is written, against
// Config.Quota. A refused reservation is the caller's signal to stop
// recording the camera (gap spool_full); the spool never makes room by
// deleting footage that is not uploaded.
//
// Concurrency: a Spool is safe for concurrent use; quota accounting is
// atomic. A File is used by one goroutine (its camera's pipeline) until
// Finish, then only read. The Journal serialises appends with a mutex;
// Append blocks for one fdatasync. Nothing here starts goroutines.
package spool
