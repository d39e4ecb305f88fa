// Package procstat measures what this process spends during a load run of
// the recorder: CPU time (user and system, from getrusage, so every
// goroutine and thread counts, and child processes do not), the resident
// set, and the Go live heap. The recorder's Go benchmark and `kuzet bench`
// share it, so that their per-camera figures mean the same thing.
//
// A Meter is used by one goroutine; it starts none. Read may be called
// from any goroutine.
package procstat
