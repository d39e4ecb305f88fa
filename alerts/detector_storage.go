package alerts

import (
	"fmt"
	"time"
)

// sysState is what the storage detectors remember between evaluations.
// Owned by the engine's run goroutine.
type sysState struct {
	spoolSince  time.Time
	lagSince    time.Time
	failures    uint64
	failedAt    []time.Time // upload failures within UploadFailureWindow
	seenFailure bool
	storeSince  time.Time
	dbBadSince  time.Time
}

// spoolHysteresis: the spool alert clears this far under its first level.
const spoolHysteresis = 0.02

// systemConditions runs the recorder and storage detectors.
func (e *engine) systemConditions(now time.Time) []condition {
	if e.storage == nil {
		return nil
	}
	h := e.storage.StorageHealth()
	s := &e.sys
	var out []condition
	cond := func(k Kind, part string, sev Severity, since time.Time, title, detail string) {
		out = append(out, condition{kind: k, subject: e.cfg.Node + "/" + part, severity: sev, title: title, detail: detail, since: since})
	}

	// Spool filling: 50/80/95 % by default, one alert whose severity rises.
	if h.SpoolQuota > 0 {
		r := float64(h.SpoolUsed) / float64(h.SpoolQuota)
		lv := e.cfg.SpoolLevels
		switch {
		case r >= lv[0]:
			if s.spoolSince.IsZero() {
				s.spoolSince = now
			}
			sev := SeverityMedium
			if r >= lv[2] {
				sev = SeverityCritical
			} else if r >= lv[1] {
				sev = SeverityHigh
			}
			cond(KindSpoolFilling, "spool", sev, s.spoolSince, "Spool filling",
				fmt.Sprintf("local spool %s full; %d segments (%d bytes) wait for upload", pct(h.SpoolUsed, h.SpoolQuota), h.UploadBacklog, h.UploadBacklogBytes))
		case r < lv[0]-spoolHysteresis:
			s.spoolSince = time.Time{}
		default:
			if !s.spoolSince.IsZero() {
				cond(KindSpoolFilling, "spool", SeverityMedium, s.spoolSince, "Spool filling",
					fmt.Sprintf("local spool %s full", pct(h.SpoolUsed, h.SpoolQuota)))
			}
		}
	}

	// Recording lag.
	if h.RecordingLag >= e.cfg.RecordingLagMax {
		if s.lagSince.IsZero() {
			s.lagSince = now.Add(-h.RecordingLag + e.cfg.RecordingLagMax)
		}
		cond(KindRecordingLag, "recording", "", s.lagSince, "Recording lagging",
			fmt.Sprintf("footage %s old is not yet stored and indexed; %d segments wait", h.RecordingLag.Round(time.Second), h.UploadBacklog))
	} else {
		s.lagSince = time.Time{}
	}

	// Upload failures within the window.
	if s.seenFailure && h.UploadFailures > s.failures {
		n := min(h.UploadFailures-s.failures, uint64(e.cfg.UploadFailures))
		for range n {
			s.failedAt = append(s.failedAt, now)
		}
	}
	s.failures, s.seenFailure = h.UploadFailures, true
	keep := s.failedAt[:0]
	for _, t := range s.failedAt {
		if now.Sub(t) < e.cfg.UploadFailureWindow {
			keep = append(keep, t)
		}
	}
	s.failedAt = keep
	if len(s.failedAt) >= e.cfg.UploadFailures {
		cond(KindUploadFailures, "upload", "", s.failedAt[0], "Uploads failing",
			fmt.Sprintf("%d failed uploads within %s", len(s.failedAt), e.cfg.UploadFailureWindow))
	}

	// Object store unreachable.
	if !h.StoreUp {
		if s.storeSince.IsZero() {
			s.storeSince = now
		}
		if e.lasted(now, s.storeSince, e.cfg.DependencyDownFor) {
			cond(KindStoreUnreachable, "store", "", s.storeSince, "Object store unreachable",
				fmt.Sprintf("uploads wait in the spool: %s", h.StoreError))
		}
	} else {
		s.storeSince = time.Time{}
	}
	return out
}
