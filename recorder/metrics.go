package recorder

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the recorder's Prometheus metrics. Create them with
// NewMetrics, once per process.
//
//	kuzet_recorder_segments_total{camera,outcome}    segments closed (recorded, recovered) and dropped (damaged, rejected)
//	kuzet_recorder_recorded_bytes_total{camera}      segment bytes written to the spool
//	kuzet_recorder_gaps_total{camera,reason}         gaps opened
//	kuzet_recorder_dropped_units_total{camera,reason} units not recorded (waiting_keyframe, spool_full, no_timeline)
//	kuzet_recorder_spool_bytes                        segment bytes in the spool
//	kuzet_recorder_spool_quota_bytes                  spool quota
//	kuzet_recorder_spool_full_total{camera}           times recording of a camera stopped for a full spool
//	kuzet_recorder_upload_backlog_segments            closed segments waiting for upload
//	kuzet_recorder_upload_backlog_bytes               their bytes
//	kuzet_recorder_uploads_total{outcome}             upload attempts: ok, unavailable, integrity, error
//	kuzet_recorder_upload_seconds{camera,facility}    time to upload and verify one segment (histogram)
//	kuzet_recorder_store_up                           1 when the last store operation succeeded
//	kuzet_recorder_index_up                           1 when the last index write succeeded
//	kuzet_recorder_journal_pending_records            index changes waiting for PostgreSQL
//	kuzet_recorder_journal_rejected_total             journal records PostgreSQL refused (kept in rejected.log)
//	kuzet_recorder_recording_lag_seconds{camera,facility} age of the oldest closed segment's end not yet uploaded and indexed
//	kuzet_recorder_camera_spool_bytes{camera,facility}   a camera's bytes in the spool (open and waiting segments)
//	kuzet_recorder_retention_deleted_total{outcome}   retention deletions: deleted, held, error
//	kuzet_recorder_holds_applied_total{outcome}       store legal-hold changes: on, off, error
//	kuzet_recorder_orphans{kind}                      differences found by the last orphan check
//	kuzet_recorder_errors_total{camera,op}            errors by operation (spool, journal, state, segment)
//
// The per-camera series of upload_seconds, recording_lag_seconds and
// camera_spool_bytes are removed once a camera is no longer recorded and
// nothing of it waits for upload or PostgreSQL. The store's own latency
// over all uploads is kuzet_store_upload_seconds{outcome}.
type Metrics struct {
	segments      *prometheus.CounterVec
	recorded      *prometheus.CounterVec
	gaps          *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	spoolBytes    prometheus.Gauge
	spoolQuota    prometheus.Gauge
	spoolFull     *prometheus.CounterVec
	backlog       prometheus.Gauge
	backlogBytes  prometheus.Gauge
	uploads       *prometheus.CounterVec
	uploadSeconds *prometheus.HistogramVec
	storeUp       prometheus.Gauge
	indexUp       prometheus.Gauge
	journal       prometheus.Gauge
	rejected      prometheus.Counter
	lag           *prometheus.GaugeVec
	cameraSpool   *prometheus.GaugeVec
	retention     *prometheus.CounterVec
	holds         *prometheus.CounterVec
	orphans       *prometheus.GaugeVec
	errors        *prometheus.CounterVec
}

// forgetCamera removes a camera's per-camera series.
func (m *Metrics) forgetCamera(camera string) {
	l := prometheus.Labels{"camera": camera}
	m.uploadSeconds.DeletePartialMatch(l)
	m.lag.DeletePartialMatch(l)
	m.cameraSpool.DeletePartialMatch(l)
}

// NewMetrics creates the recorder metrics and registers them with reg (nil:
// unregistered, for tests and benchmarks).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	// Upload latency buckets in seconds: few, as there is one histogram
	// per camera.
	uploadBuckets := []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_segments_total",
			Help: "Segments closed in the spool (recorded, recovered) or lost (damaged, rejected)."}, []string{"camera", "outcome"}),
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_recorded_bytes_total",
			Help: "Segment bytes written to the spool."}, []string{"camera"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_gaps_total",
			Help: "Gaps in a camera's recording, by reason."}, []string{"camera", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_dropped_units_total",
			Help: "Access units the recorder did not record, by reason."}, []string{"camera", "reason"}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_spool_bytes",
			Help: "Segment bytes held in the local spool."}),
		spoolQuota: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_spool_quota_bytes",
			Help: "The spool's quota."}),
		spoolFull: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_spool_full_total",
			Help: "Times recording of a camera stopped because the spool was full."}, []string{"camera"}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_upload_backlog_segments",
			Help: "Closed segments waiting for upload."}),
		backlogBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_upload_backlog_bytes",
			Help: "Bytes of closed segments waiting for upload."}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_uploads_total",
			Help: "Segment upload attempts by outcome."}, []string{"outcome"}),
		uploadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kuzet_recorder_upload_seconds",
			Help:    "Time to upload and verify one segment of a camera (successful uploads).",
			Buckets: uploadBuckets}, []string{"camera", "facility"}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_store_up",
			Help: "1 when the last object store operation of the recorder succeeded."}),
		indexUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_index_up",
			Help: "1 when the last index write of the recorder succeeded."}),
		journal: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_recorder_journal_pending_records",
			Help: "Index changes in the local journal waiting for PostgreSQL."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "kuzet_recorder_journal_rejected_total",
			Help: "Journal records PostgreSQL refused permanently (kept in the spool's journal/rejected.log)."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_recorder_recording_lag_seconds",
			Help: "Age of the end of the oldest closed segment of a camera not yet uploaded and indexed (0 when none waits)."},
			[]string{"camera", "facility"}),
		cameraSpool: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_recorder_camera_spool_bytes",
			Help: "Bytes of a camera in the local spool: the segment being written and those waiting for upload."},
			[]string{"camera", "facility"}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_retention_deleted_total",
			Help: "Retention deletions by outcome (deleted, held, error)."}, []string{"outcome"}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_holds_applied_total",
			Help: "Object store legal-hold changes by outcome (on, off, error)."}, []string{"outcome"}),
		orphans: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_recorder_orphans",
			Help: "Differences between store and index found by the last orphan check, by kind."}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_recorder_errors_total",
			Help: "Recorder errors by camera and operation."}, []string{"camera", "op"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.segments, m.recorded, m.gaps, m.dropped, m.spoolBytes, m.spoolQuota,
			m.spoolFull, m.backlog, m.backlogBytes, m.uploads, m.uploadSeconds, m.storeUp, m.indexUp, m.journal,
			m.rejected, m.lag, m.cameraSpool, m.retention, m.holds, m.orphans, m.errors} {
			if err := reg.Register(c); err != nil {
				return nil, errors.Join(errors.New("recorder: register metrics"), err)
			}
		}
	}
	return m, nil
}
