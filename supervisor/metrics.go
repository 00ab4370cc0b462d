package supervisor

import (
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	runs     *prometheus.CounterVec
	cache    *prometheus.CounterVec
	queued   prometheus.Gauge
	running  prometheus.Gauge
	resumed  prometheus.Counter
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ccos_supervisor_runs_total",
			Help: "Runs by agent and final status (succeeded, failed, in_doubt, cancelled), and submissions refused (rejected, queue-full)."}, []string{"agent", "status"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ccos_supervisor_admission_cache_total",
			Help: "Admission cache lookups, by result (hit, miss)."}, []string{"result"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ccos_supervisor_runs_queued",
			Help: "Runs waiting for a worker."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ccos_supervisor_runs_running",
			Help: "Runs executing."}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "ccos_supervisor_runs_resumed_total",
			Help: "Runs that were in flight when a supervisor ended and were resumed by the next one."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ccos_supervisor_run_seconds",
			Help: "Time from a run's start to its end.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 16)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.runs, m.cache, m.queued, m.running, m.resumed, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// totalMemory is the host's memory in bytes (1 GiB when unknown).
func totalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1 << 30
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 1 << 30
}
