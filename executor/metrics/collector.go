package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names on the agent's /metrics.
const (
	CPUUsageMetric         = "gantry_container_cpu_usage_seconds_total"
	MemoryWorkingSetMetric = "gantry_container_memory_working_set_bytes"
)

var labels = []string{"namespace", "pod", "container"}

// Collector exposes a Store to Prometheus: the cumulative CPU seconds (a counter)
// and the memory working set (a gauge) of the newest sample of every container,
// labelled namespace, pod, container. Register it with prometheus.Registerer.MustRegister.
type Collector struct {
	store *Store
	cpu   *prometheus.Desc
	mem   *prometheus.Desc
}

// NewCollector returns a Collector over store.
func NewCollector(store *Store) *Collector {
	return &Collector{
		store: store,
		cpu: prometheus.NewDesc(CPUUsageMetric,
			"Cumulative CPU time consumed by the container, in seconds.", labels, nil),
		mem: prometheus.NewDesc(MemoryWorkingSetMetric,
			"Memory working set of the container (usage minus inactive file cache), in bytes.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.cpu
	ch <- c.mem
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.store.All() {
		lv := []string{u.Namespace, u.Pod, u.Container}
		// NewConstMetric only fails on label values that are not UTF-8; such a
		// container is left out rather than breaking the scrape.
		if m, err := prometheus.NewConstMetric(c.cpu, prometheus.CounterValue, float64(u.Latest.CPUUsageNanos)/1e9, lv...); err == nil {
			ch <- m
		}
		if m, err := prometheus.NewConstMetric(c.mem, prometheus.GaugeValue, float64(u.Latest.MemoryWorkingSetBytes), lv...); err == nil {
			ch <- m
		}
	}
}

var _ prometheus.Collector = (*Collector)(nil)
