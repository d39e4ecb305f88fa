// Package ingest pulls each camera over RTSP and fans its media out to the
// rest of Kuzet.
//
// It sits at the head of the data flow: camera ──RTSP──► Source ──► Stream ──►
// readers (recorder, live viewers, detectors). A Source owns one camera
// session (gortsplib client, reconnect with jittered backoff, health stats);
// it depacketizes RTP into access units (Unit) with media time and wall time,
// and publishes them into the camera's Stream.
//
// Concurrency and backpressure: the source's RTP callbacks never block. They
// hand units to Stream.Publish, which copies a pointer into each reader's
// fixed-capacity queue under a short lock. A reader whose queue is full loses
// units by its DropPolicy: a live viewer (SkipToKeyframe) empties its queue
// and resumes at the next keyframe; the recorder (KeepQueueReportOverload)
// keeps what is queued, drops new units until a keyframe finds room, and is
// told with an Event of reason writer_overload. Every lost unit is counted in
// kuzet_ingest_reader_dropped_units_total{camera,reader}, and logged at most
// once per 10 s per reader. Units are immutable once published and shared by
// all readers, so memory per camera is bounded by the reader queues (items and
// bytes), the GOP cache bytes and the largest accepted access unit.
package ingest
