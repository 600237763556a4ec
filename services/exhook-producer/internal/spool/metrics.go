package spool

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the spool's collectors. A nil *Metrics records nothing.
type Metrics struct {
	Entries    prometheus.Gauge
	Bytes      prometheus.Gauge
	MaxBytes   prometheus.Gauge
	Appends    *prometheus.CounterVec // result: ok|full|error
	BatchSize  prometheus.Histogram
	FsyncTime  prometheus.Histogram
	Shipped    *prometheus.CounterVec // result: delivered|dead_lettered
	ShipErrors prometheus.Counter
}

// NewMetrics registers the spool collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Entries:  f.NewGauge(prometheus.GaugeOpts{Name: "exhook_spool_entries", Help: "Records in the spool not yet acknowledged by Kafka."}),
		Bytes:    f.NewGauge(prometheus.GaugeOpts{Name: "exhook_spool_bytes", Help: "Size of the spool on disk."}),
		MaxBytes: f.NewGauge(prometheus.GaugeOpts{Name: "exhook_spool_max_bytes", Help: "Configured spool size limit (spool.maxBytes)."}),
		Appends: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_spool_appends_total", Help: "Spool appends by result (ok, full, error).",
		}, []string{"result"}),
		BatchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name: "exhook_spool_commit_batch_records", Help: "Records made durable by one fsync (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		FsyncTime: f.NewHistogram(prometheus.HistogramOpts{
			Name: "exhook_spool_commit_seconds", Help: "Time to write and fsync one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		Shipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_spool_shipped_total", Help: "Spooled records settled with Kafka, by result (delivered, dead_lettered).",
		}, []string{"result"}),
		ShipErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "exhook_spool_ship_errors_total", Help: "Spooled records Kafka rejected permanently and that could not be dead-lettered either; they stay in the spool.",
		}),
	}
}

func (m *Metrics) appends(result string) {
	if m != nil {
		m.Appends.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) batch(n int, d time.Duration) {
	if m != nil {
		m.BatchSize.Observe(float64(n))
		m.FsyncTime.Observe(d.Seconds())
	}
}

func (m *Metrics) gauges(entries, bytes, max int64) {
	if m != nil {
		m.Entries.Set(float64(entries))
		m.Bytes.Set(float64(bytes))
		m.MaxBytes.Set(float64(max))
	}
}

func (m *Metrics) shipped(result string) {
	if m != nil {
		m.Shipped.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) shipErr() {
	if m != nil {
		m.ShipErrors.Inc()
	}
}
