// Package viewer is everything people and machines reach over HTTP: the
// /api/v1 JSON API, the web UI, WebRTC signalling (WHEP) for live and
// recorded viewing, evidence export, and the operational endpoints
// /healthz, /readyz and /metrics.
//
// It sits downstream of ingest (live streams are read from ingest.Stream
// readers) and beside the recorder and alerts, which it never imports: what
// it needs from them (recordings, gaps, events, holds) arrives through small
// interfaces declared here and wired in cmd/kuzet. The registry supplies
// identity, the authorization policy and the audit log.
//
// Concurrency: net/http runs one goroutine per connection; handlers hold no
// shared mutable state beyond what their dependencies guard. Readiness
// checks run concurrently, each bounded by Config.ReadyTimeout, so a hung
// dependency makes /readyz answer 503 rather than hang. Run shuts the
// server down within Config.ShutdownTimeout.
package viewer
