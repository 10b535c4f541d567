package planner

import (
	"fmt"
	"strings"
)

// status derives an app's health and progress line after this plan's decisions.
//
//	Suspended    the Deployment is paused
//	Degraded     invalid strategy, a failed or rolled-back rollout (until git moves),
//	             crash-looping pods of the target, or pods that fit on no node
//	Progressing  the target is not fully available yet, or old pods remain
//	Healthy      the target runs all replicas available and nothing else
func (a *app) status() AppStatus {
	if a.kind == KindJob || a.kind == KindCronJob {
		return a.batchStatus()
	}
	s := AppStatus{Message: a.state.Message}
	if a.target != nil {
		s.Revision = a.target.Number
	}
	s.Progress = a.progressLine()
	if a.state.Pin != nil && s.Message == "" {
		s.Message = fmt.Sprintf("pinned to revision %d by rollback until git changes", a.revNumber(a.state.Pin.Revision))
	}
	var problems []string
	if a.invalid != "" {
		problems = append(problems, a.invalid)
	}
	if a.failing != "" && a.state.Message == "" {
		problems = append(problems, a.failing)
	}
	if a.unplaceable > 0 {
		problems = append(problems, fmt.Sprintf("%s unplaceable: %s", describePods(a.unplaceable), a.unplaceWhy))
	}
	if len(problems) > 0 {
		if s.Message != "" {
			problems = append([]string{s.Message}, problems...)
		}
		s.Message = strings.Join(problems, "; ")
	}
	if a.warning != "" {
		if s.Message != "" {
			s.Message += "; "
		}
		s.Message += a.warning
	}
	switch {
	case a.dep != nil && a.dep.Spec.Paused:
		s.Health = Suspended
		if s.Message == "" {
			s.Message = "paused"
		}
	case len(problems) > 0 || a.state.Failed != nil:
		s.Health = Degraded
	case a.kind == KindPod:
		s.Health = a.barePodHealth()
	case a.complete():
		s.Health = Healthy
	default:
		s.Health = Progressing
	}
	return s
}

func (a *app) barePodHealth() Health {
	if len(a.newPods) == 1 {
		p := a.newPods[0]
		switch {
		case p.pod.Status.Phase == "Succeeded":
			return Healthy
		case p.pod.Status.Phase == "Failed":
			return Degraded
		case p.ready && p.node != nil && p.node.ready:
			return Healthy
		}
	}
	return Progressing
}

func (a *app) progressLine() string {
	if a.target == nil {
		return fmt.Sprintf("no revision yet, %d old", len(a.oldPods))
	}
	if a.kind == KindPod {
		phase := "not created"
		if len(a.newPods) == 1 {
			p := a.newPods[0]
			phase = strings.ToLower(string(p.pod.Status.Phase))
			if phase == "" {
				phase = "pending"
			}
			if p.ready {
				phase = "ready"
			}
		}
		if len(a.oldPods) > 0 {
			phase += fmt.Sprintf(", %d old", len(a.oldPods))
		}
		return fmt.Sprintf("revision %d: %s", a.target.Number, phase)
	}
	line := fmt.Sprintf("revision %d: %d/%d updated, %d/%d available", a.target.Number, len(a.newPods), a.replicas, a.newAvail, a.replicas)
	if len(a.oldPods) > 0 {
		line += fmt.Sprintf(", %d old", len(a.oldPods))
	}
	if a.deferred > 0 {
		line += fmt.Sprintf(", %d waiting for the next round", a.deferred)
	}
	return line
}
