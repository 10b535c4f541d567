package plannertest

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/manifest"
)

// DeploymentBuilder builds a defaulted *appsv1.Deployment: namespace default, one
// replica, selector and template label app=<name>, one container "main" with image
// busybox:1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
// progressDeadlineSeconds 600, restartPolicy Always.
type DeploymentBuilder struct{ d *appsv1.Deployment }

// Deployment starts a Deployment named name.
func Deployment(name string) *DeploymentBuilder {
	one := int32(1)
	ten := int32(10)
	six := int32(600)
	q := intstr.FromString("25%")
	q2 := q
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       defaultSpec(),
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &q, MaxUnavailable: &q2}},
			RevisionHistoryLimit:    &ten,
			ProgressDeadlineSeconds: &six,
		},
	}
	return &DeploymentBuilder{d: d}
}

func defaultSpec() corev1.PodSpec {
	grace := int64(30)
	return corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: "busybox:1",
			ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			TerminationMessagePath: "/dev/termination-log"}},
		RestartPolicy:                 corev1.RestartPolicyAlways,
		DNSPolicy:                     corev1.DNSClusterFirst,
		SchedulerName:                 corev1.DefaultSchedulerName,
		TerminationGracePeriodSeconds: &grace,
		SecurityContext:               &corev1.PodSecurityContext{},
	}
}

// Namespace sets the namespace.
func (b *DeploymentBuilder) Namespace(ns string) *DeploymentBuilder { b.d.Namespace = ns; return b }

// Replicas sets spec.replicas.
func (b *DeploymentBuilder) Replicas(n int32) *DeploymentBuilder { b.d.Spec.Replicas = &n; return b }

// Recreate selects the Recreate strategy.
func (b *DeploymentBuilder) Recreate() *DeploymentBuilder {
	b.d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	return b
}

// MaxSurge sets rollingUpdate.maxSurge ("1", "25%").
func (b *DeploymentBuilder) MaxSurge(v string) *DeploymentBuilder {
	q := intstr.Parse(v)
	b.rolling().MaxSurge = &q
	return b
}

// MaxUnavailable sets rollingUpdate.maxUnavailable ("0", "25%").
func (b *DeploymentBuilder) MaxUnavailable(v string) *DeploymentBuilder {
	q := intstr.Parse(v)
	b.rolling().MaxUnavailable = &q
	return b
}

func (b *DeploymentBuilder) rolling() *appsv1.RollingUpdateDeployment {
	b.d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	if b.d.Spec.Strategy.RollingUpdate == nil {
		q := intstr.FromString("25%")
		q2 := q
		b.d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &q, MaxUnavailable: &q2}
	}
	return b.d.Spec.Strategy.RollingUpdate
}

// MinReady sets minReadySeconds.
func (b *DeploymentBuilder) MinReady(s int32) *DeploymentBuilder {
	b.d.Spec.MinReadySeconds = s
	return b
}

// ProgressDeadline sets progressDeadlineSeconds.
func (b *DeploymentBuilder) ProgressDeadline(s int32) *DeploymentBuilder {
	b.d.Spec.ProgressDeadlineSeconds = &s
	return b
}

// Paused sets spec.paused.
func (b *DeploymentBuilder) Paused(p bool) *DeploymentBuilder { b.d.Spec.Paused = p; return b }

// Annotation sets an annotation on the Deployment itself.
func (b *DeploymentBuilder) Annotation(k, v string) *DeploymentBuilder {
	if b.d.Annotations == nil {
		b.d.Annotations = map[string]string{}
	}
	b.d.Annotations[k] = v
	return b
}

// Pod edits the pod template.
func (b *DeploymentBuilder) Pod(f func(*PodSpecBuilder)) *DeploymentBuilder {
	f(&PodSpecBuilder{meta: &b.d.Spec.Template.ObjectMeta, spec: &b.d.Spec.Template.Spec})
	return b
}

// Image sets the main container's image.
func (b *DeploymentBuilder) Image(img string) *DeploymentBuilder {
	return b.Pod(func(p *PodSpecBuilder) { p.Image(img) })
}

// Requests sets the main container's CPU and memory requests ("" leaves one unset).
func (b *DeploymentBuilder) Requests(cpu, mem string) *DeploymentBuilder {
	return b.Pod(func(p *PodSpecBuilder) { p.Requests(cpu, mem) })
}

// Obj returns the Deployment.
func (b *DeploymentBuilder) Obj() *appsv1.Deployment { return b.d }

// PodBuilder builds a defaulted bare *corev1.Pod (namespace default, label
// app=<name>, one container "main").
type PodBuilder struct{ p *corev1.Pod }

// Pod starts a bare Pod named name.
func Pod(name string) *PodBuilder {
	return &PodBuilder{p: &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec:       defaultSpec(),
	}}
}

// Spec edits the pod.
func (b *PodBuilder) Spec(f func(*PodSpecBuilder)) *PodBuilder {
	f(&PodSpecBuilder{meta: &b.p.ObjectMeta, spec: &b.p.Spec})
	return b
}

// Obj returns the Pod.
func (b *PodBuilder) Obj() *corev1.Pod { return b.p }

// PodSpecBuilder edits a pod spec and its metadata.
type PodSpecBuilder struct {
	meta *metav1.ObjectMeta
	spec *corev1.PodSpec
}

// Image sets the main container's image.
func (p *PodSpecBuilder) Image(img string) *PodSpecBuilder {
	p.spec.Containers[0].Image = img
	return p
}

// Requests sets the main container's requests ("" leaves one unset).
func (p *PodSpecBuilder) Requests(cpu, mem string) *PodSpecBuilder {
	setRequests(&p.spec.Containers[0], cpu, mem)
	return p
}

// InitRequests adds an init container with these requests.
func (p *PodSpecBuilder) InitRequests(cpu, mem string) *PodSpecBuilder {
	c := corev1.Container{Name: "init" + string(rune('0'+len(p.spec.InitContainers))), Image: p.spec.Containers[0].Image}
	setRequests(&c, cpu, mem)
	p.spec.InitContainers = append(p.spec.InitContainers, c)
	return p
}

func setRequests(c *corev1.Container, cpu, mem string) {
	if c.Resources.Requests == nil {
		c.Resources.Requests = corev1.ResourceList{}
	}
	if cpu != "" {
		c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(mem)
	}
}

// Label sets a template label.
func (p *PodSpecBuilder) Label(k, v string) *PodSpecBuilder {
	if p.meta.Labels == nil {
		p.meta.Labels = map[string]string{}
	}
	p.meta.Labels[k] = v
	return p
}

// PriorityClass sets priorityClassName.
func (p *PodSpecBuilder) PriorityClass(name string) *PodSpecBuilder {
	p.spec.PriorityClassName = name
	return p
}

// NodeSelector adds a nodeSelector entry.
func (p *PodSpecBuilder) NodeSelector(k, v string) *PodSpecBuilder {
	if p.spec.NodeSelector == nil {
		p.spec.NodeSelector = map[string]string{}
	}
	p.spec.NodeSelector[k] = v
	return p
}

// Toleration adds a toleration (operator Equal, or Exists when value is "").
func (p *PodSpecBuilder) Toleration(key, value string, effect corev1.TaintEffect) *PodSpecBuilder {
	t := corev1.Toleration{Key: key, Value: value, Effect: effect, Operator: corev1.TolerationOpEqual}
	if value == "" {
		t.Operator = corev1.TolerationOpExists
	}
	p.spec.Tolerations = append(p.spec.Tolerations, t)
	return p
}

// HostPort exposes a TCP host port on the main container.
func (p *PodSpecBuilder) HostPort(port int32) *PodSpecBuilder {
	c := &p.spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: port, HostPort: port, Protocol: corev1.ProtocolTCP})
	return p
}

func (p *PodSpecBuilder) affinity() *corev1.Affinity {
	if p.spec.Affinity == nil {
		p.spec.Affinity = &corev1.Affinity{}
	}
	return p.spec.Affinity
}

// AntiAffinity requires no two pods with label key=value on one node
// (required pod anti-affinity, topology kubernetes.io/hostname).
func (p *PodSpecBuilder) AntiAffinity(key, value string) *PodSpecBuilder {
	a := p.affinity()
	if a.PodAntiAffinity == nil {
		a.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
		corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value}}, TopologyKey: "kubernetes.io/hostname"})
	return p
}

// RequireNode adds a required node affinity term key In values.
func (p *PodSpecBuilder) RequireNode(key string, values ...string) *PodSpecBuilder {
	a := p.affinity()
	if a.NodeAffinity == nil {
		a.NodeAffinity = &corev1.NodeAffinity{}
	}
	if a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	ns := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: key, Operator: corev1.NodeSelectorOpIn, Values: values}}})
	return p
}

// PreferNode adds a preferred node affinity term key=value with weight.
func (p *PodSpecBuilder) PreferNode(key, value string, weight int32) *PodSpecBuilder {
	a := p.affinity()
	if a.NodeAffinity == nil {
		a.NodeAffinity = &corev1.NodeAffinity{}
	}
	a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.PreferredSchedulingTerm{Weight: weight, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: key, Operator: corev1.NodeSelectorOpIn, Values: []string{value}}}}})
	return p
}

// Spread adds a topologySpreadConstraint on kubernetes.io/hostname selecting the
// pods with label key=value.
func (p *PodSpecBuilder) Spread(maxSkew int32, when corev1.UnsatisfiableConstraintAction, key, value string) *PodSpecBuilder {
	p.spec.TopologySpreadConstraints = append(p.spec.TopologySpreadConstraints, corev1.TopologySpreadConstraint{
		MaxSkew: maxSkew, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: when,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value}}})
	return p
}

// Desired builds a manifest.Desired from *appsv1.Deployment and *corev1.Pod
// objects, sorted by (namespace, name) as manifest.Load returns them. Other types
// are ignored.
func Desired(objs ...any) *manifest.Desired {
	d := &manifest.Desired{}
	for _, o := range objs {
		switch v := o.(type) {
		case *appsv1.Deployment:
			d.Deployments = append(d.Deployments, v)
			d.Objects = append(d.Objects, manifest.Object{APIVersion: "apps/v1", Kind: "Deployment", Namespace: v.Namespace, Name: v.Name, Typed: v})
		case *corev1.Pod:
			d.Pods = append(d.Pods, v)
			d.Objects = append(d.Objects, manifest.Object{APIVersion: "v1", Kind: "Pod", Namespace: v.Namespace, Name: v.Name, Typed: v})
		case *batchv1.Job:
			d.Jobs = append(d.Jobs, v)
			d.Objects = append(d.Objects, manifest.Object{APIVersion: "batch/v1", Kind: "Job", Namespace: v.Namespace, Name: v.Name, Typed: v})
		case *batchv1.CronJob:
			d.CronJobs = append(d.CronJobs, v)
			d.Objects = append(d.Objects, manifest.Object{APIVersion: "batch/v1", Kind: "CronJob", Namespace: v.Namespace, Name: v.Name, Typed: v})
		}
	}
	sort.Slice(d.Deployments, func(i, j int) bool {
		return d.Deployments[i].Namespace+"/"+d.Deployments[i].Name < d.Deployments[j].Namespace+"/"+d.Deployments[j].Name
	})
	sort.Slice(d.Pods, func(i, j int) bool {
		return d.Pods[i].Namespace+"/"+d.Pods[i].Name < d.Pods[j].Namespace+"/"+d.Pods[j].Name
	})
	sort.Slice(d.Jobs, func(i, j int) bool {
		return d.Jobs[i].Namespace+"/"+d.Jobs[i].Name < d.Jobs[j].Namespace+"/"+d.Jobs[j].Name
	})
	sort.Slice(d.CronJobs, func(i, j int) bool {
		return d.CronJobs[i].Namespace+"/"+d.CronJobs[i].Name < d.CronJobs[j].Namespace+"/"+d.CronJobs[j].Name
	})
	return d
}
