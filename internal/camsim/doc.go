// Package camsim simulates IP cameras: one process serves many RTSP cameras
// (rtsp://ADDR/cam/1 .. /cam/N) from one gortsplib server, each looping a
// committed clip in real time, with faults injected on demand or on
// schedule. It is the camera end of the data flow for tests, `kuzet demo`,
// `kuzet bench` and `kuzet camsim`; nothing in the service imports it.
//
// # What a camera sends
//
// Each camera loops an MPEG-TS clip (H.264 or H.265 without B-frames,
// optionally AAC) at the pace of the clip's own timestamps. RTP sequence
// numbers and timestamps run on across loops (the loop period is the clip's
// first-to-last frame span plus one frame); parameter sets are in the SDP
// and before every key frame; an RTCP sender report (RFC 3550 NTP format)
// precedes every key frame and at least every Config.SenderReportPeriod.
// Every video access unit carries one SEI user_data_unregistered NAL unit
// with a Mark (camera number, frame number consecutive from 0, send time),
// so a receiver can prove which frames arrived: see FindMark and
// ParseMarkSEI.
//
// # Cost
//
// A clip is read and packetized once per process; a camera only writes
// headers (sequence number, timestamp, marker) into one reused rtp.Packet
// and encodes its per-frame SEI into a fixed buffer, without allocating.
// The server marshals each packet once per camera, whatever the number of
// readers. Only the TCP transport is served (a client asking for UDP is
// answered 461 and retries over TCP).
//
// # Concurrency and backpressure
//
// One goroutine per camera paces the clip and writes into its
// gortsplib.ServerStream; it never blocks on readers: the server queues up
// to Config.WriteQueueSize packets per session and drops packets for a
// reader whose queue is full (the reader sees a gap in sequence numbers and
// marks; Camera.PacketsDropped counts them, a warning is logged at most every
// 10 s per camera). Cameras run whether or not anyone reads them. Camera methods
// (faults, counters) are safe for concurrent use and take effect at the
// camera's next packet. Server.Close stops the camera goroutines first,
// then the streams and sessions, then the listener, and waits for all of
// them.
//
// # Faults
//
// Drop, offline, stall, timestamp jumps and packet loss act on sessions,
// pacing and the camera's RTP numbering; a clock skew (Camera.SkewClock)
// moves the NTP time of the camera's sender reports away from true time,
// as a camera with a wrong clock does. A changed SSRC and
// malformed packets cannot be expressed through the server's API, so a thin
// wrapper of each TCP connection rewrites the SSRC field of outgoing
// interleaved frames and writes extra malformed frames before the next
// video packet (see wire.go).
package camsim
