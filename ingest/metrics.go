package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus metrics of ingest. Create one with NewMetrics
// and share it between all streams and sources of a process.
type Metrics struct {
	readerDropped *prometheus.CounterVec
	gopOverflow   *prometheus.CounterVec
}

// NewMetrics creates the ingest metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		readerDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_ingest_reader_dropped_units_total",
			Help: "Access units a reader of a camera's stream lost because its queue was full.",
		}, []string{"camera", "reader"}),
		gopOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_ingest_gop_cache_overflow_total",
			Help: "GOPs too large for the GOP cache; readers joining during them wait for the next keyframe.",
		}, []string{"camera"}),
	}
	for _, c := range []prometheus.Collector{m.readerDropped, m.gopOverflow} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
