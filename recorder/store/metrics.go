package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of the object store. Create one with
// NewMetrics per process and give it to the store.
type Metrics struct {
	upload   *prometheus.HistogramVec
	uploaded prometheus.Counter
	errs     *prometheus.CounterVec
}

// NewMetrics creates the store metrics and registers them with reg; a nil
// reg leaves them unregistered (tests, benchmarks).
//
//	kuzet_store_upload_seconds{outcome}            Put latency, outcome ok|error
//	kuzet_store_uploaded_bytes_total                bytes stored by successful Puts
//	kuzet_store_operation_errors_total{op,outcome}  failed operations
//
// op is one of put, get, get_range, stat, delete, list, set_hold, held,
// ping; outcome (of an error) one of not_found, held, unavailable,
// integrity, invalid, canceled, error.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		upload: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kuzet_store_upload_seconds",
			Help:    "Time to store and verify one object, by outcome (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16), // 5ms .. ~164s
		}, []string{"outcome"}),
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_store_uploaded_bytes_total",
			Help: "Bytes stored and verified by successful uploads.",
		}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_store_operation_errors_total",
			Help: "Object store operations that failed, by operation and outcome.",
		}, []string{"op", "outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.upload, m.uploaded, m.errs} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func newUnregisteredMetrics() *Metrics {
	m, _ := NewMetrics(nil) // cannot fail without a registerer
	return m
}

// observe counts err (if any) for op and returns it unchanged.
func (m *Metrics) observe(op string, err error) error {
	if err != nil {
		m.errs.WithLabelValues(op, outcome(err)).Inc()
	}
	return err
}

// observePut records one Put.
func (m *Metrics) observePut(start time.Time, size int64, err error) error {
	if err != nil {
		m.upload.WithLabelValues("error").Observe(time.Since(start).Seconds())
		return m.observe("put", err)
	}
	m.upload.WithLabelValues("ok").Observe(time.Since(start).Seconds())
	m.uploaded.Add(float64(size))
	return nil
}

func outcome(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrHeld):
		return "held"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrIntegrity):
		return "integrity"
	case errors.Is(err, ErrInvalidKey), errors.Is(err, ErrInvalidRange):
		return "invalid"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}
