package planner

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Kubernetes defaults the planner relies on. manifest applies them already; the
// planner applies them again, defensively, so an undefaulted object never crashes it.
const (
	defaultReplicas             = 1
	defaultProgressDeadlineSecs = 600
	defaultRevisionHistoryLimit = 10
	defaultMaxStarts            = 10
	defaultCrashLoopRestarts    = 5
	defaultPodsPerNode          = 110
)

var defaultSurgeUnavailable = intstr.FromString("25%")

func (c Config) withDefaults() Config {
	if c.MaxStartsPerNodePerRound == 0 {
		c.MaxStartsPerNodePerRound = defaultMaxStarts
	}
	if c.Scoring == "" {
		c.Scoring = MostAllocated
	}
	if c.CrashLoopRestarts <= 0 {
		c.CrashLoopRestarts = defaultCrashLoopRestarts
	}
	if c.NodeLostGrace <= 0 {
		c.NodeLostGrace = defaultNodeLostGrace
	}
	return c
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return defaultReplicas
	}
	if *d.Spec.Replicas < 0 {
		return 0
	}
	return *d.Spec.Replicas
}

func progressDeadlineOf(d *appsv1.Deployment) int32 {
	if d.Spec.ProgressDeadlineSeconds == nil || *d.Spec.ProgressDeadlineSeconds <= 0 {
		return defaultProgressDeadlineSecs
	}
	return *d.Spec.ProgressDeadlineSeconds
}

func revisionHistoryLimitOf(d *appsv1.Deployment) int {
	if d.Spec.RevisionHistoryLimit == nil || *d.Spec.RevisionHistoryLimit < 0 {
		return defaultRevisionHistoryLimit
	}
	return int(*d.Spec.RevisionHistoryLimit)
}

// RollingBudget resolves a Deployment's maxSurge and maxUnavailable against replicas
// the way Kubernetes does: surge rounds up, unavailable rounds down, both default to
// 25%. Both 0 is an error; percentages that both round to 0 allow one unavailable pod.
func RollingBudget(d *appsv1.Deployment, replicas int32) (surge, unavailable int32, err error) {
	return rollingParams(d, replicas)
}

func rollingParams(d *appsv1.Deployment, replicas int32) (surge, unavailable int32, err error) {
	ms, mu := defaultSurgeUnavailable, defaultSurgeUnavailable
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			ms = *ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			mu = *ru.MaxUnavailable
		}
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(&ms, int(replicas), true)
	if err != nil {
		return 0, 0, fmt.Errorf("maxSurge %q: %w", ms.String(), err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(&mu, int(replicas), false)
	if err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable %q: %w", mu.String(), err)
	}
	if s < 0 || u < 0 {
		return 0, 0, fmt.Errorf("maxSurge %s and maxUnavailable %s must not be negative", ms.String(), mu.String())
	}
	if isZero(ms) && isZero(mu) {
		return 0, 0, fmt.Errorf("maxSurge and maxUnavailable are both 0; one must be positive")
	}
	if int(replicas) < u {
		u = int(replicas)
	}
	if s == 0 && u == 0 {
		// Percentages that round to 0 for few replicas: Kubernetes then allows one
		// unavailable pod so the rollout can move.
		u = 1
	}
	return int32(s), int32(u), nil
}

func isZero(v intstr.IntOrString) bool {
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	return v.StrVal == "0%" || v.StrVal == "0"
}

// podRequests is what a pod asks of a node, as the scheduler counts it: the sum of
// its containers' requests, or the largest init container's request if that is
// bigger (init containers run one at a time, before the others), plus overhead.
// A container without requests but with limits requests its limits.
func podRequests(spec *corev1.PodSpec) (cpuMilli, memBytes int64) {
	for i := range spec.Containers {
		c, m := containerRequests(&spec.Containers[i])
		cpuMilli += c
		memBytes += m
	}
	for i := range spec.InitContainers {
		c, m := containerRequests(&spec.InitContainers[i])
		if c > cpuMilli {
			cpuMilli = c
		}
		if m > memBytes {
			memBytes = m
		}
	}
	if q, ok := spec.Overhead[corev1.ResourceCPU]; ok {
		cpuMilli += q.MilliValue()
	}
	if q, ok := spec.Overhead[corev1.ResourceMemory]; ok {
		memBytes += q.Value()
	}
	return cpuMilli, memBytes
}

func containerRequests(c *corev1.Container) (cpuMilli, memBytes int64) {
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		cpuMilli = q.MilliValue()
	} else if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		cpuMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
		memBytes = q.Value()
	} else if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		memBytes = q.Value()
	}
	return cpuMilli, memBytes
}
