package supervisor

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	runs     *prometheus.CounterVec
	cache    *prometheus.CounterVec
	crashes  prometheus.Counter
	replays  prometheus.Counter
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ccos_supervisor_runs_total",
			Help: "Plans submitted, by outcome (ok, plan-error, failed, rejected)."}, []string{"outcome"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ccos_supervisor_admission_cache_total",
			Help: "Admission cache lookups, by result (hit, miss)."}, []string{"result"}),
		crashes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ccos_supervisor_guest_crashes_total",
			Help: "Guests that crashed, broke the protocol or hit a limit."}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{Name: "ccos_supervisor_replays_total",
			Help: "Plans replayed in a fresh guest after a crash."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ccos_supervisor_run_seconds",
			Help: "Time from admission to the end of a run, replay included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.runs, m.cache, m.crashes, m.replays, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
