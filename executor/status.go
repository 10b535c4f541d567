package executor

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// computeStatus derives the pod's status from its containers' states: phase, the
// Initialized / ContainersReady / Ready conditions, per-container states and the pod
// IPs. It runs at the end of every reconcile pass.
func (w *podWorker) computeStatus(p Pod) {
	spec := &p.Pod.Spec
	st := corev1.PodStatus{Phase: corev1.PodPending, HostIP: "", QOSClass: qosClass(p.Pod)}
	if !w.started.IsZero() {
		t := metav1.NewTime(w.started)
		st.StartTime = &t
	}
	for _, ip := range w.podIPs() {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}
	if w.sb == nil && w.sbErr != nil {
		st.Reason, st.Message = "FailedCreatePodSandBox", w.sbErr.Error()
	} else if w.volErr != nil {
		st.Reason, st.Message = "FailedMount", w.volErr.Error()
	}

	initialized := true
	initFailed := false
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cs := w.containerStatus(c, w.ctrs[c.Name], false)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		s := w.ctrs[c.Name]
		if s == nil || !s.succeeded {
			initialized = false
			if s != nil && s.final {
				initFailed = true
			}
		}
	}
	allReady := true
	running, terminated, failed, started := 0, 0, 0, 0
	for i := range spec.Containers {
		c := &spec.Containers[i]
		s := w.ctrs[c.Name]
		cs := w.containerStatus(c, s, true)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		if s == nil {
			continue
		}
		if s.running {
			running++
			started++
			continue
		}
		if s.term != nil {
			started++
			if s.final {
				terminated++
				if s.term.ExitCode != 0 {
					failed++
				}
			} else {
				// Waiting to be restarted counts as running for the phase.
				running++
			}
		}
	}
	switch {
	case w.failed || initFailed:
		st.Phase = corev1.PodFailed
	case !initialized:
		st.Phase = corev1.PodPending
	case len(spec.Containers) > 0 && terminated == len(spec.Containers):
		st.Phase = corev1.PodSucceeded
		if failed > 0 {
			st.Phase = corev1.PodFailed
		}
	case started == len(spec.Containers) && running > 0:
		st.Phase = corev1.PodRunning
	}
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
			reason = ""
		}
		return corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: now}
	}
	ready := allReady && initialized && st.Phase == corev1.PodRunning
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true, ""),
		cond(corev1.PodInitialized, initialized, "ContainersNotInitialized"),
		cond(corev1.ContainersReady, ready, "ContainersNotReady"),
		cond(corev1.PodReady, ready, "ContainersNotReady"),
	}
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		st.Conditions[2].Reason, st.Conditions[3].Reason = "PodCompleted", "PodCompleted"
	}
	w.mu.Lock()
	// Keep transition times of conditions whose status did not change.
	for i, c := range st.Conditions {
		for _, old := range w.status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				st.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	w.status = st
	w.mu.Unlock()
}

func (w *podWorker) containerStatus(c *corev1.Container, s *ctrState, app bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	f := false
	cs.Started = &f
	if s == nil {
		reason := ReasonContainerCreating
		if app && len(w.pod().Pod.Spec.InitContainers) > 0 && !w.initDone {
			reason = ReasonPodInitializing
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
		return cs
	}
	cs.RestartCount = s.restarts
	if s.image != "" {
		cs.ImageID = s.image
	}
	if s.id != "" {
		cs.ContainerID = "containerd://" + s.id
	}
	if s.lastTerm != nil {
		cs.LastTerminationState.Terminated = s.lastTerm.DeepCopy()
	}
	switch {
	case s.running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.started)}
		started := s.probes == nil || s.probes.Started()
		cs.Started = &started
		cs.Ready = started && (s.probes == nil || s.probes.Ready())
	case s.waiting != nil:
		cs.State.Waiting = s.waiting.DeepCopy()
		if s.term != nil {
			cs.LastTerminationState.Terminated = s.term.DeepCopy()
		}
	case s.term != nil:
		cs.State.Terminated = s.term.DeepCopy()
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}
	}
	return cs
}

func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	any, guaranteed := false, true
	for _, c := range pod.Spec.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq || hasLim {
				any = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// statusKey identifies a status for change detection, ignoring condition timestamps.
func statusKey(st *corev1.PodStatus) string {
	c := st.DeepCopy()
	for i := range c.Conditions {
		c.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Sprint(c)
	}
	return string(b)
}
