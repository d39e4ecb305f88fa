package alerts

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/alerts/scene"
)

// Metrics are the Prometheus metrics of the alert path. Create them once
// per process with NewMetrics. Labels are bounded: kind, severity, event
// type, outcome, webhook (configured names), camera and facility ids, and
// subject (camera ids or node/part). The per-camera stream metrics (state,
// fps, bitrate, RTP loss, reconnects, last frame age, clock offset, queue
// drops) are ingest's, and recording lag, upload latency and spool bytes
// the recorder's; these add what only the alert path knows.
//
//	kuzet_alerts_open{facility,severity}                       active (open or acknowledged) alerts
//	kuzet_alerts_condition{kind,subject,facility}              1 while a detector's condition holds (before rules)
//	kuzet_alerts_events_total{type,severity}                   alert events published
//	kuzet_alerts_evaluation_seconds                            time of one evaluation
//	kuzet_alerts_database_up                                   1 when the alert service's last query succeeded
//	kuzet_alerts_store_errors_total{op}                        failed database operations of the alert path
//	kuzet_alerts_camera_activity_score{camera,facility}        last judged second's activity score
//	kuzet_alerts_camera_active_seconds_total{camera,facility}  seconds judged active
//	kuzet_alerts_camera_keyframe_age_seconds{camera,facility}  time since the last keyframe
//	kuzet_alerts_sse_clients                                   connected event streams
//	kuzet_alerts_sse_dropped_total                             streams cut off for falling behind
//	kuzet_alerts_webhook_deliveries_total{webhook,outcome}     attempts: ok, retry, failed (gave up)
//	kuzet_alerts_webhook_dropped_total{webhook}                events dropped on a full queue
//	kuzet_alerts_webhook_queue_length{webhook}                 events waiting
//	kuzet_alerts_webhook_seconds{webhook}                      time of one delivery attempt
type Metrics struct {
	open          *prometheus.GaugeVec
	conditions    *prometheus.GaugeVec
	events        *prometheus.CounterVec
	evaluation    prometheus.Histogram
	databaseUp    prometheus.Gauge
	storeErrors   *prometheus.CounterVec
	activityScore *prometheus.GaugeVec
	activeSeconds *prometheus.CounterVec
	keyframeAge   *prometheus.GaugeVec
	sseClients    prometheus.Gauge
	sseDropped    prometheus.Counter
	deliveries    *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	queue         *prometheus.GaugeVec
	webhookTime   *prometheus.HistogramVec

	mu       sync.Mutex
	condSeen map[[3]string]bool
	openSeen map[[2]string]bool
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	cam := []string{"camera", "facility"}
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_alerts_open",
			Help: "Active (open or acknowledged) alerts by facility ('' for system alerts) and severity."}, []string{"facility", "severity"}),
		conditions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_alerts_condition",
			Help: "1 while a detector's condition holds on a subject (camera id or node/part), before rules and maintenance."},
			[]string{"kind", "subject", "facility"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_alerts_events_total",
			Help: "Alert events published (opened, updated, escalated, acknowledged, resolved, incident) by severity."},
			[]string{"type", "severity"}),
		evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kuzet_alerts_evaluation_seconds",
			Help: "Time of one evaluation of every detector and alert.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		databaseUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_alerts_database_up",
			Help: "1 when the alert service's latest database query succeeded."}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_alerts_store_errors_total",
			Help: "Failed database operations of the alert path by operation."}, []string{"op"}),
		activityScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_alerts_camera_activity_score",
			Help: "Activity score of a camera's latest judged second: mean inter-frame size over its quiet baseline."}, cam),
		activeSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_alerts_camera_active_seconds_total",
			Help: "Seconds of a camera's video judged active (motion in view)."}, cam),
		keyframeAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_alerts_camera_keyframe_age_seconds",
			Help: "Time since a camera's latest keyframe arrived."}, cam),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_alerts_sse_clients",
			Help: "Connected alert event streams."}),
		sseDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "kuzet_alerts_sse_dropped_total",
			Help: "Alert event streams cut off because the client fell behind (it resumes from the database)."}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_alerts_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: ok, retry (failed, will retry), failed (gave up)."},
			[]string{"webhook", "outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_alerts_webhook_dropped_total",
			Help: "Alert events not delivered to a webhook because its queue was full."}, []string{"webhook"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kuzet_alerts_webhook_queue_length",
			Help: "Alert events waiting for delivery to a webhook."}, []string{"webhook"}),
		webhookTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kuzet_alerts_webhook_seconds",
			Help: "Time of one webhook delivery attempt.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"webhook"}),
		condSeen: map[[3]string]bool{},
		openSeen: map[[2]string]bool{},
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.open, m.conditions, m.events, m.evaluation, m.databaseUp, m.storeErrors,
			m.activityScore, m.activeSeconds, m.keyframeAge, m.sseClients, m.sseDropped, m.deliveries, m.dropped, m.queue,
			m.webhookTime} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) event(e Event) {
	m.events.WithLabelValues(string(e.Type), string(e.Alert.Severity)).Inc()
}

// setConditions sets the condition gauges to exactly conds.
func (m *Metrics) setConditions(conds []condition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := make(map[[3]string]bool, len(conds))
	for _, c := range conds {
		k := [3]string{string(c.kind), c.subject, c.facility}
		now[k] = true
		m.conditions.WithLabelValues(k[:]...).Set(1)
	}
	for k := range m.condSeen {
		if !now[k] {
			m.conditions.DeleteLabelValues(k[:]...)
		}
	}
	m.condSeen = now
}

// setOpen sets the open-alert gauges to counts; every severity of a
// facility seen is reported (0 when none).
func (m *Metrics) setOpen(counts map[[2]string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range counts {
		m.openSeen[k] = true
	}
	facs := map[string]bool{"": true}
	for k := range m.openSeen {
		facs[k[0]] = true
	}
	for f := range facs {
		for _, s := range Severities() {
			m.open.WithLabelValues(f, string(s)).Set(float64(counts[[2]string{f, string(s)}]))
		}
	}
}

func (m *Metrics) activity(camera, facility string, s scene.Second) {
	m.activityScore.WithLabelValues(camera, facility).Set(s.Score)
	if s.Active {
		m.activeSeconds.WithLabelValues(camera, facility).Inc()
	}
}

// forgetCamera deletes a camera's series when its stream ends.
func (m *Metrics) forgetCamera(camera string) {
	l := prometheus.Labels{"camera": camera}
	m.activityScore.DeletePartialMatch(l)
	m.activeSeconds.DeletePartialMatch(l)
	m.keyframeAge.DeletePartialMatch(l)
}
