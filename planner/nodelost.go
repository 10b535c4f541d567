package planner

import (
	"fmt"
	"time"
)

// replaceLost stops the app pods that cannot keep running where they are, so the
// app's reconcile replaces them in this same plan (bare Pods, whose name is fixed,
// in the next one):
//   - pods on a node that is gone from the cluster;
//   - pods on a node NotReady (or Unknown) for at least Config.NodeLostGrace,
//     measured from the Ready condition's lastTransitionTime;
//   - pods on a node with a NoExecute taint they do not tolerate (or tolerate for
//     tolerationSeconds that have passed since the taint's timeAdded);
//   - Deployment pods that are not bound to a node, or that Failed or Succeeded.
//
// Pods being deleted are no longer counted but not stopped again. Pods that belong
// to no app are left alone.
func (c *cluster) replaceLost() {
	for _, p := range c.pods {
		if p.app == nil || p.gone {
			continue
		}
		if p.deleting {
			p.gone = true
			continue
		}
		dep := p.app.kind == KindDeployment
		switch {
		case p.nodeName == "":
			if dep {
				c.stop(p, "not bound to a node; replaced")
			}
		case p.node == nil:
			c.stop(p, fmt.Sprintf("node %s no longer exists", p.nodeName))
		case p.terminal:
			if dep {
				c.stop(p, fmt.Sprintf("pod %s; replaced", p.pod.Status.Phase))
			}
		case !p.node.ready && !p.node.notReadySince.IsZero() && c.now.Sub(p.node.notReadySince) >= c.cfg.NodeLostGrace:
			c.stop(p, fmt.Sprintf("node %s NotReady for %s (grace %s)", p.nodeName,
				c.now.Sub(p.node.notReadySince).Round(time.Second), c.cfg.NodeLostGrace))
		default:
			if t := evictingTaint(&p.pod.Spec, p.node, c.now); t != nil {
				c.stop(p, fmt.Sprintf("untolerated taint %s on node %s", t.ToString(), p.nodeName))
			}
		}
	}
}
