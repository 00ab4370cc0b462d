package egress

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus collectors; a nil *metrics records
// nothing.
type metrics struct {
	decisions *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	tunnels   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccos_egress_decisions_total",
			Help: "Egress decisions by agent, action and rule.",
		}, []string{"agent", "action", "rule"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccos_egress_bytes_total",
			Help: "Bytes carried to (sent) and from (received) origins, by agent.",
		}, []string{"agent", "direction"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ccos_egress_request_duration_seconds",
			Help:    "Time from a request's arrival to the origin's response header (or the tunnel's start).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"kind"}),
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ccos_egress_tunnels_open",
			Help: "CONNECT tunnels open.",
		}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.bytes, m.latency, m.tunnels} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) decision(d Decision) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(d.Agent, string(d.Action), string(d.Rule)).Inc()
	if d.Latency > 0 {
		m.latency.WithLabelValues(d.Kind).Observe(d.Latency.Seconds())
	}
}

func (m *metrics) addBytes(agent, direction string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.bytes.WithLabelValues(agent, direction).Add(float64(n))
}

func (m *metrics) tunnelDelta(n float64) {
	if m != nil {
		m.tunnels.Add(n)
	}
}
