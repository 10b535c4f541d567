package executor

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/metrics"
)

// metricsSource is the executor's side of the metrics Sampler: the running containers
// of the pods it holds (from containerd's labels) and one task.Metrics reading each.
type metricsSource struct{ e *Executor }

func (s metricsSource) Containers(ctx context.Context) ([]metrics.ContainerID, error) {
	cl := s.e.client()
	if cl == nil {
		return nil, fmt.Errorf("metrics: executor not started: %w", api.ErrFailedPrecondition)
	}
	ctx = s.e.nsCtx(ctx)
	ctrs, err := cl.Containers(ctx, "labels."+quoteLabel(LabelPodUID))
	if err != nil {
		return nil, fmt.Errorf("metrics: list containers: %w", err)
	}
	var ids []metrics.ContainerID
	for _, c := range ctrs {
		labels, err := c.Labels(ctx)
		if err != nil || labels[LabelExitCode] != "" {
			continue
		}
		if s.e.worker(labels[LabelPodUID]) == nil {
			continue
		}
		ids = append(ids, metrics.ContainerID{Namespace: labels[LabelPodNamespace], Pod: labels[LabelPodName], Container: labels[LabelContainer], ID: c.ID()})
	}
	return ids, nil
}

func (s metricsSource) Sample(ctx context.Context, id metrics.ContainerID) (metrics.Sample, error) {
	ctx = s.e.nsCtx(ctx)
	c, err := s.e.client().LoadContainer(ctx, id.ID)
	if err != nil {
		return metrics.Sample{}, fmt.Errorf("metrics of %s: %w", id.ID, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return metrics.Sample{}, fmt.Errorf("metrics of %s: %w", id.ID, err)
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		return metrics.Sample{}, fmt.Errorf("metrics of %s: %w", id.ID, err)
	}
	return metrics.DecodeMetric(m)
}

var _ metrics.Source = metricsSource{}

// Metrics returns the per-container CPU and memory usage the executor samples every
// WithMetricsInterval (default 10 s); the autoscaler reads pod usage from it.
func (e *Executor) Metrics() metrics.Reader { return e.metricsStore }

// MetricsStore returns the sampled usage of every container.
func (e *Executor) MetricsStore() *metrics.Store { return e.metricsStore }

// Collector returns a Prometheus collector of the sampled container metrics, for the
// agent's /metrics.
func (e *Executor) Collector() prometheus.Collector { return metrics.NewCollector(e.metricsStore) }

// SampleMetrics sweeps the metrics once now (tests, and `gantry top` later).
func (e *Executor) SampleMetrics(ctx context.Context) error {
	return e.sampler.Sweep(ctx)
}
