package manifest

import (
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults, as the Kubernetes API server applies them (pkg/apis/*/v1/defaults.go),
// for the fields gantry supports. Fields gantry does not support are left alone.
const (
	// DefaultNamespace is the namespace of namespaced objects that name none.
	DefaultNamespace = "default"
	// DefaultRefreshInterval is how often an ExternalSecret is re-read when it says nothing.
	DefaultRefreshInterval = time.Hour
	// DefaultSecretVolumeMode is the file mode of secret volume files (0400: gantry
	// keeps secret files owner-only, where Kubernetes uses 0644).
	DefaultSecretVolumeMode int32 = 0o400
	// DefaultConfigMapVolumeMode is the file mode of configMap volume files (0644).
	DefaultConfigMapVolumeMode int32 = 0o644
)

func ptr[T any](v T) *T { return &v }

func applyDefaults(e *entry) {
	if e.info.namespaced && e.meta.Namespace == "" {
		e.meta.Namespace = DefaultNamespace
	}
	if !e.info.namespaced {
		e.meta.Namespace = ""
	}
	switch o := e.obj.(type) {
	case *corev1.Pod:
		o.APIVersion, o.Kind = "v1", "Pod"
		defaultPodSpec(&o.Spec, corev1.RestartPolicyAlways)
	case *appsv1.Deployment:
		o.APIVersion, o.Kind = "apps/v1", "Deployment"
		defaultDeployment(o)
	case *batchv1.Job:
		o.APIVersion, o.Kind = "batch/v1", "Job"
		defaultJobSpec(&o.Spec)
	case *batchv1.CronJob:
		o.APIVersion, o.Kind = "batch/v1", "CronJob"
		s := &o.Spec
		if s.ConcurrencyPolicy == "" {
			s.ConcurrencyPolicy = batchv1.AllowConcurrent
		}
		if s.Suspend == nil {
			s.Suspend = ptr(false)
		}
		if s.SuccessfulJobsHistoryLimit == nil {
			s.SuccessfulJobsHistoryLimit = ptr(int32(3))
		}
		if s.FailedJobsHistoryLimit == nil {
			s.FailedJobsHistoryLimit = ptr(int32(1))
		}
		defaultJobSpec(&s.JobTemplate.Spec)
	case *corev1.Service:
		o.APIVersion, o.Kind = "v1", "Service"
		defaultService(o)
	case *corev1.Secret:
		o.APIVersion, o.Kind = "v1", "Secret"
		if o.Type == "" {
			o.Type = corev1.SecretTypeOpaque
		}
	case *corev1.ConfigMap:
		o.APIVersion, o.Kind = "v1", "ConfigMap"
	case *corev1.Namespace:
		o.APIVersion, o.Kind = "v1", "Namespace"
	case *SecretStore:
		if v := o.Spec.Provider.Vault; v != nil {
			if v.Version == "" {
				v.Version = "v2"
			}
			if a := v.Auth.AppRole; a != nil && a.Path == "" {
				a.Path = "approle"
			}
		}
	case *ExternalSecret:
		if o.Spec.Target.Name == "" {
			o.Spec.Target.Name = o.Name
		}
		if o.Spec.SecretStoreRef.Kind == "" {
			o.Spec.SecretStoreRef.Kind = "SecretStore"
		}
		if o.Spec.RefreshInterval == nil {
			o.Spec.RefreshInterval = &metav1.Duration{Duration: DefaultRefreshInterval}
		}
	}
}

func defaultDeployment(d *appsv1.Deployment) {
	s := &d.Spec
	if s.Replicas == nil {
		s.Replicas = ptr(int32(1))
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.Strategy.RollingUpdate.MaxUnavailable == nil {
			s.Strategy.RollingUpdate.MaxUnavailable = ptr(intstr.FromString("25%"))
		}
		if s.Strategy.RollingUpdate.MaxSurge == nil {
			s.Strategy.RollingUpdate.MaxSurge = ptr(intstr.FromString("25%"))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptr(int32(10))
	}
	if s.ProgressDeadlineSeconds == nil {
		s.ProgressDeadlineSeconds = ptr(int32(600))
	}
	defaultPodSpec(&s.Template.Spec, corev1.RestartPolicyAlways)
}

func defaultJobSpec(s *batchv1.JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = ptr(int32(1))
		s.Parallelism = ptr(int32(1))
	}
	if s.Parallelism == nil {
		s.Parallelism = ptr(int32(1))
	}
	if s.BackoffLimit == nil {
		s.BackoffLimit = ptr(int32(6))
	}
	if s.CompletionMode == nil {
		s.CompletionMode = ptr(batchv1.NonIndexedCompletion)
	}
	if s.Suspend == nil {
		s.Suspend = ptr(false)
	}
	// No restartPolicy default: Kubernetes rejects a Job template without OnFailure or Never.
	defaultPodSpec(&s.Template.Spec, "")
}

func defaultPodSpec(s *corev1.PodSpec, restart corev1.RestartPolicy) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = restart
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr(int64(30))
	}
	for i := range s.Volumes {
		v := &s.Volumes[i]
		if v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil {
			v.ConfigMap.DefaultMode = ptr(DefaultConfigMapVolumeMode)
		}
		if v.Secret != nil && v.Secret.DefaultMode == nil {
			v.Secret.DefaultMode = ptr(DefaultSecretVolumeMode)
		}
		if v.HostPath != nil && v.HostPath.Type == nil {
			v.HostPath.Type = ptr(corev1.HostPathUnset)
		}
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = pullPolicyFor(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
}

// pullPolicyFor is Kubernetes' rule: Always for :latest or an untagged image,
// IfNotPresent otherwise (a digest counts as pinned).
func pullPolicyFor(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i < 0 || name[i+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if h := p.HTTPGet; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Scheme == "" {
			h.Scheme = corev1.URISchemeHTTP
		}
	}
}

func defaultService(s *corev1.Service) {
	sp := &s.Spec
	if sp.Type == "" {
		sp.Type = corev1.ServiceTypeClusterIP
	}
	if sp.SessionAffinity == "" {
		sp.SessionAffinity = corev1.ServiceAffinityNone
	}
	if sp.SessionAffinity == corev1.ServiceAffinityClientIP {
		if sp.SessionAffinityConfig == nil {
			sp.SessionAffinityConfig = &corev1.SessionAffinityConfig{}
		}
		if sp.SessionAffinityConfig.ClientIP == nil {
			sp.SessionAffinityConfig.ClientIP = &corev1.ClientIPConfig{}
		}
		if sp.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			sp.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptr(int32(corev1.DefaultClientIPServiceAffinitySeconds))
		}
	}
	if sp.IPFamilyPolicy == nil {
		sp.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
}
