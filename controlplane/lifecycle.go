package controlplane

import (
	"context"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/store"
)

// lifecycleInterval is how often the leader checks heartbeats: a fifth of the grace
// period, between 200 ms and 5 s.
func (s *Server) lifecycleInterval() time.Duration {
	return min(max(s.opts.grace/5, 200*time.Millisecond), 5*time.Second)
}

// runLifecycle campaigns for leadership through etcd and, while leader, runs the node
// lifecycle controller. Several servers on one etcd run one controller between them.
func (s *Server) runLifecycle(ctx context.Context) {
	host, _ := os.Hostname()
	whileLeader(ctx, s.st.Client(), "lifecycle", host+" "+s.url, func(ctx context.Context) {
		s.opts.logger.Info("leading the node lifecycle controller", "grace", s.opts.grace)
		s.lead(ctx)
	})
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (s *Server) lead(ctx context.Context) {
	t := time.NewTicker(s.lifecycleInterval())
	defer t.Stop()
	var lastLost map[string]bool
	for tick := 0; ctx.Err() == nil; tick++ {
		lost, err := s.checkNodes(ctx)
		if err == nil && (lastLost == nil || !sameSet(lost, lastLost) || tick%30 == 0) {
			if err := s.markPods(ctx, lost); err == nil {
				lastLost = lost
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// checkNodes marks nodes whose last heartbeat is older than the grace period Ready=
// Unknown (shown as NotReady) and returns the set of nodes that are not Ready.
func (s *Server) checkNodes(ctx context.Context) (map[string]bool, error) {
	nodes, err := s.st.Nodes().List(ctx, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	now := s.opts.now()
	lost := map[string]bool{}
	ready := 0
	for _, n := range nodes.Items {
		c := readyCondition(n)
		if c == nil {
			continue
		}
		if since := lastHeartbeat(n, c); c.Status == corev1.ConditionTrue && now.Sub(since) > s.opts.grace {
			_, err := s.st.Nodes().GuaranteedUpdate(ctx, "", n.Name, func(n *corev1.Node) error {
				c := readyCondition(n)
				if c == nil || c.Status != corev1.ConditionTrue || !lastHeartbeat(n, c).Equal(since) {
					return errSkip // the agent came back meanwhile
				}
				c.Status = corev1.ConditionUnknown
				c.Reason = api.ReasonHeartbeatMissing
				c.Message = "no heartbeat from the agent since " + since.UTC().Format(time.RFC3339) + " (grace period " + s.opts.grace.String() + ")"
				c.LastTransitionTime = metav1.NewTime(now)
				return nil
			})
			if err == nil {
				s.opts.logger.Warn("node lost", "node", n.Name, "lastHeartbeat", since)
				lost[n.Name] = true
				continue
			}
		}
		if c.Status != corev1.ConditionTrue {
			lost[n.Name] = true
		} else {
			ready++
		}
	}
	s.metrics.nodes.WithLabelValues("true").Set(float64(ready))
	s.metrics.nodes.WithLabelValues("false").Set(float64(len(lost)))
	return lost, nil
}

// lastHeartbeat is the exact time the server last heard from the node's agent.
func lastHeartbeat(n *corev1.Node, c *corev1.NodeCondition) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, n.Annotations[api.AnnotationHeartbeat]); err == nil {
		return t
	}
	return c.LastHeartbeatTime.Time
}

// errSkip aborts a GuaranteedUpdate that turned out to be unnecessary.
var errSkip = errorString("skip")

type errorString string

func (e errorString) Error() string { return string(e) }

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// markPods sets NodeLost=True on the pods of lost nodes and NodeLost=False on pods
// whose node is back. Placing replacements is the planner's job.
func (s *Server) markPods(ctx context.Context, lost map[string]bool) error {
	pods, err := s.st.Pods().List(ctx, "", store.ListOptions{})
	if err != nil {
		return err
	}
	now := metav1.NewTime(s.opts.now())
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			continue
		}
		want := corev1.ConditionFalse
		if lost[p.Spec.NodeName] {
			want = corev1.ConditionTrue
		}
		cur := podCondition(p, api.PodConditionNodeLost)
		if cur == nil && want == corev1.ConditionFalse || cur != nil && cur.Status == want {
			continue
		}
		_, err := s.st.Pods().GuaranteedUpdate(ctx, p.Namespace, p.Name, func(p *corev1.Pod) error {
			c := podCondition(p, api.PodConditionNodeLost)
			if c == nil {
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: api.PodConditionNodeLost})
				c = &p.Status.Conditions[len(p.Status.Conditions)-1]
			}
			c.Status = want
			c.LastTransitionTime = now
			if want == corev1.ConditionTrue {
				c.Reason = api.ReasonHeartbeatMissing
				c.Message = "node " + p.Spec.NodeName + " stopped sending heartbeats"
			} else {
				c.Reason = "NodeReady"
				c.Message = "node " + p.Spec.NodeName + " is back"
			}
			return nil
		})
		if err != nil && ctx.Err() != nil {
			return err
		}
	}
	return nil
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}
