package controlplane

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"gantry.io/gantry/api"
)

func newNodeAPI(s *Server) *kindAPI[corev1.Node, *corev1.Node] {
	return &kindAPI[corev1.Node, *corev1.Node]{
		s: s, res: s.st.Nodes(), typeName: "Node",
		fields: func(n *corev1.Node) fields.Set {
			return fields.Set{"metadata.name": n.Name, "spec.unschedulable": fmt.Sprint(n.Spec.Unschedulable)}
		},
		nodeOf:     func(n *corev1.Node) string { return n.Name },
		copyStatus: func(dst, src *corev1.Node) { dst.Status = src.Status },
		onCreate: func(ctx context.Context, id Identity, n *corev1.Node) error {
			cidrs, err := s.cidrs.Allocate(ctx, n.Name)
			if err != nil {
				return err
			}
			n.Spec.PodCIDRs = cidrs
			n.Spec.PodCIDR = cidrs[0]
			if id.Role == api.RoleNode {
				s.stampHeartbeat(n)
			}
			return nil
		},
		onUpdate: func(ctx context.Context, id Identity, cur, in *corev1.Node) error {
			if id.Role == api.RoleNode {
				// An agent does not change its own spec (pod CIDRs, unschedulable).
				in.Spec = cur.Spec
				in.Labels, in.Annotations = mergeMaps(cur.Labels, in.Labels), mergeMaps(cur.Annotations, in.Annotations)
				s.stampHeartbeat(in)
			}
			if len(in.Spec.PodCIDRs) == 0 {
				in.Spec.PodCIDRs, in.Spec.PodCIDR = cur.Spec.PodCIDRs, cur.Spec.PodCIDR
			}
			return nil
		},
		onStatus: func(ctx context.Context, id Identity, n *corev1.Node) {
			if id.Role == api.RoleNode {
				s.stampHeartbeat(n)
			}
		},
		onDelete: func(ctx context.Context, n *corev1.Node) {
			if err := s.cidrs.Release(ctx, n.Name); err != nil {
				s.opts.logger.Warn("release pod CIDRs", "node", n.Name, "err", err)
			}
		},
	}
}

func mergeMaps(base, over map[string]string) map[string]string {
	if len(base) == 0 {
		return over
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// stampHeartbeat sets the Ready condition's lastHeartbeatTime to the server's clock
// when an agent writes its node: the lifecycle controller compares server time with
// server time, so agent clock skew does not matter.
func (s *Server) stampHeartbeat(n *corev1.Node) {
	t := s.opts.now()
	now := metav1.NewTime(t)
	// metav1.Time keeps whole seconds; the annotation keeps the exact time, so a
	// short grace period does not flap.
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[api.AnnotationHeartbeat] = t.UTC().Format(time.RFC3339Nano)
	for i := range n.Status.Conditions {
		c := &n.Status.Conditions[i]
		if c.Type == corev1.NodeReady {
			c.LastHeartbeatTime = now
			if c.LastTransitionTime.IsZero() {
				c.LastTransitionTime = now
			}
			return
		}
	}
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: api.ReasonAgentReady,
		Message: "agent is posting status", LastHeartbeatTime: now, LastTransitionTime: now,
	})
}

func newPodAPI(s *Server) *kindAPI[corev1.Pod, *corev1.Pod] {
	return &kindAPI[corev1.Pod, *corev1.Pod]{
		s: s, res: s.st.Pods(), typeName: "Pod",
		fields: func(p *corev1.Pod) fields.Set {
			return fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace,
				"spec.nodeName": p.Spec.NodeName, "status.phase": string(p.Status.Phase)}
		},
		nodeOf:     func(p *corev1.Pod) string { return p.Spec.NodeName },
		copyStatus: copyPodStatus,
		onCreate: func(ctx context.Context, id Identity, p *corev1.Pod) error {
			if len(p.Spec.Containers) == 0 {
				return fmt.Errorf("pod %s: spec.containers is empty: %w", p.Name, api.ErrInvalidArgument)
			}
			for i, c := range p.Spec.Containers {
				if c.Name == "" || c.Image == "" {
					return fmt.Errorf("pod %s: spec.containers[%d] needs a name and an image: %w", p.Name, i, api.ErrInvalidArgument)
				}
			}
			p.Status = corev1.PodStatus{Phase: corev1.PodPending}
			if p.Spec.NodeName == "" {
				return s.bindFirstFit(ctx, p)
			}
			return nil
		},
	}
}

func newEventAPI(s *Server) *kindAPI[corev1.Event, *corev1.Event] {
	return &kindAPI[corev1.Event, *corev1.Event]{
		s: s, res: s.st.Events(), typeName: "Event",
		fields: func(e *corev1.Event) fields.Set {
			return fields.Set{"metadata.name": e.Name, "metadata.namespace": e.Namespace,
				"involvedObject.kind": e.InvolvedObject.Kind, "involvedObject.name": e.InvolvedObject.Name,
				"involvedObject.namespace": e.InvolvedObject.Namespace, "involvedObject.uid": string(e.InvolvedObject.UID),
				"reason": e.Reason, "type": e.Type, "source.host": e.Source.Host}
		},
		nodeOf:     func(e *corev1.Event) string { return e.Source.Host },
		copyStatus: func(dst, src *corev1.Event) {},
		onCreate: func(ctx context.Context, id Identity, e *corev1.Event) error {
			if id.Role == api.RoleNode {
				// Events from an agent are attributed to it, whatever it claims.
				e.Source = corev1.EventSource{Component: "gantry-agent", Host: id.Name}
			}
			now := metav1.NewTime(s.opts.now())
			if e.FirstTimestamp.IsZero() {
				e.FirstTimestamp = now
			}
			if e.LastTimestamp.IsZero() {
				e.LastTimestamp = e.FirstTimestamp
			}
			if e.Count == 0 {
				e.Count = 1
			}
			if e.Type == "" {
				e.Type = corev1.EventTypeNormal
			}
			return nil
		},
	}
}

// copyPodStatus applies a pod status write, except that a pod in a terminal phase
// (Succeeded, Failed) never goes back to a running one, as the Kubernetes API
// server enforces: a restarted agent that reports a finished pod as Pending (its
// material is held back, it has not adopted it yet) must not make a finished Job
// pod look active again.
func copyPodStatus(dst, src *corev1.Pod) {
	terminal := func(p corev1.PodPhase) bool { return p == corev1.PodSucceeded || p == corev1.PodFailed }
	if terminal(dst.Status.Phase) && !terminal(src.Status.Phase) {
		return
	}
	dst.Status = src.Status
}
