// Package alerts turns what ingest and the recorder see into alerts:
// detectors, rules, the alert lifecycle in PostgreSQL, and notification
// (server-sent events for the UI, signed webhooks, Prometheus metrics).
//
// It sits at the end of the data flow. It imports ingest (camera health,
// and a detector reader on each camera's stream) and registry (places,
// policy, incidents, audit); it never imports recorder or viewer: the
// recorder's state comes through StorageSource and the API's
// authentication through Authenticator, both wired in cmd/kuzet.
//
// Detectors, evaluated every Config.Interval (1 s):
//   - from ingest.Health: camera offline (no media for 10 s), flapping (3
//     reconnects in 5 min), frame rate under half its learned nominal rate
//     for 30 s, camera clock more than 2 s off for 10 s;
//   - from the compressed stream (package scene, no decoding): keyframes
//     missing for 10 s while video flows; tamper (inter frames collapsed
//     against the camera's own quiet baseline for 5 s: covered, black or
//     frozen); scene change (inter frames as large as keyframes for 2 s);
//     activity (active seconds, alerted only where a rule asks);
//   - from StorageSource: spool 50/80/95 % full, recording lag, repeated
//     upload failures, object store unreachable; and PostgreSQL
//     unreachable, from the recorder or the service's own queries.
//
// Lifecycle. A condition that holds, is not muted by a rule and whose
// camera is not in maintenance opens one alert (a partial unique index
// keeps one active alert per kind and subject); a higher severity raises
// it; an alert left unacknowledged for EscalateAfter is escalated (one
// severity up, notified again); when the condition has been clear for
// ClearFor the alert resolves. People acknowledge, resolve, and open an
// incident from an alert; each is audited, and refused if the audit row
// cannot be written. An alert resolved by hand while its condition holds
// stays resolved until the condition clears. Every change is an event in
// alert_events, whose seq (drawn under an advisory lock, so seqs commit in
// order) is the SSE event id. While PostgreSQL is down the outage itself
// is notified without an id and stored when the database returns.
//
// Concurrency and backpressure: Run owns every goroutine — the evaluation
// loop, the event hub and its LISTEN connection, one delivery goroutine
// per webhook, and one detector goroutine per attached camera stream.
// AttachStream and the HTTP handlers may be called from any goroutine.
//   - A camera's detector reader (ingest.ReaderDetector, DetectorQueue
//     units, SkipToKeyframe) never blocks the camera; what it loses is
//     counted in kuzet_ingest_reader_dropped_units_total{reader="detector"}.
//   - Each SSE client has a queue of SSEBuffer events; a client that falls
//     behind is cut off (kuzet_alerts_sse_dropped_total) and resumes from
//     its Last-Event-ID out of the hub's ring or the database.
//   - Each webhook has a queue of WebhookQueue events; when it is full new
//     events are dropped (kuzet_alerts_webhook_dropped_total) and logged.
//     Deliveries are retried with jittered, capped exponential backoff
//     until a 2xx answer or WebhookMaxAttempts (kuzet_alerts_webhook_
//     deliveries_total{outcome="failed"}).
//   - Memory is bounded: per camera a scene baseline (Scene.BaselineSeconds
//     values) and HistoryPoints health samples; the hub's ring holds 1024
//     events.
package alerts
