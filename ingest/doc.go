// Package ingest pulls each camera over RTSP and fans its media out to the
// rest of Kuzet.
//
// It sits at the head of the data flow: camera ──RTSP──► Source ──► Stream ──►
// readers (recorder, live viewers, detectors). It imports nothing of Kuzet's
// but internal plumbing; recorder, viewer and alerts import it.
//
//   - Source (one per camera) runs gortsplib client sessions: TCP by default,
//     UDP or automatic on request, Basic/Digest auth, rtsps://. It reconnects
//     forever with jittered exponential backoff (BackoffMin..BackoffMax,
//     reset after a session stable for StableAfter). It depacketizes H.264 /
//     H.265 (parameter sets from the SDP or in-band, put in front of every
//     random-access picture, AUDs dropped) and AAC / G.711 audio into Units
//     with media time (RTP, unwrapped, per run) and wall time (RTCP sender
//     reports, else receive time), and keeps Health.
//   - Manager holds the streams of a changing camera set and runs their
//     sources; Apply/Set/Remove touch only the cameras that changed.
//   - Stream is the fan-out hub of one camera: bounded reader queues and a
//     GOP cache.
//
// Timeline. Readers see an Event before the units it concerns. A session's
// first keyframe is preceded by Event{discontinuity, "session started",
// Tracks}. Within a session an RTP timestamp jump, a confirmed large
// sequence gap, or new parameter sets end the run: the next keyframe opens a
// new run with PTS 0, preceded by one Event{discontinuity, detail, Tracks}
// (new Tracks when the parameters changed). The RTP client follows one SSRC
// per session, so an SSRC change restarts the session at once and is
// published as one Event{discontinuity, "ssrc changed", Tracks}, not as an
// outage. A session end publishes Event{camera_offline, reason, nil Tracks},
// once per outage; a disabled or removed camera gets Event{disabled}, and a
// removed camera's stream is closed.
//
// Concurrency and backpressure: the source's RTP callbacks (the client's
// reader goroutine over TCP, one goroutine per track over UDP) never block.
// They take the source's lock, which Health shares, and hand units to
// Stream.Publish, which copies a pointer into each reader's fixed-capacity
// queue under a short lock. A reader whose queue is full loses units by its
// DropPolicy: a live viewer (SkipToKeyframe) empties its queue (keeping the
// latest event) and resumes at the next keyframe; the recorder
// (KeepQueueReportOverload) keeps what is queued, drops new units until a
// keyframe finds room, and is told with an Event of reason writer_overload.
// Every lost unit is counted in kuzet_ingest_reader_dropped_units_total
// {camera,reader} and in Health.QueueDrops, and logged at most once per 10 s
// per reader.
//
// Memory. Units are immutable once published and shared by all readers.
// Per camera, media held is bounded by: MaxAccessUnit for the unit being
// depacketized (an endless NAL unit is cut off there, dropped and counted in
// Health.OversizeUnits, never buffered further); the GOP cache
// (GOPCacheBytes); and the reader queues, each capped at ReaderMaxBytes. Live
// viewers all hold parts of the same recent window, so their number does
// not raise the bound: the ceiling is ReaderMaxBytes for that window, plus
// ReaderMaxBytes per reader that keeps its queue (the recorder), plus the
// GOP cache.
//
// Credentials never appear in logs, errors, events or Health: URLs are
// logged without them and error texts are redacted.
package ingest
