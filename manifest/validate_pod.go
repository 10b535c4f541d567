package manifest

import (
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// hostnameTopology is the only topology key gantry places by (one node = one domain).
const hostnameTopology = "kubernetes.io/hostname"

func (v *validator) podSpec(s *corev1.PodSpec, p *field.Path, kind string) {
	switch s.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		if kind == "Pod" {
			v.errs(field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy,
				[]corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
		}
	}
	switch s.DNSPolicy {
	case "", corev1.DNSClusterFirst, corev1.DNSDefault:
	default:
		v.errs(field.NotSupported(p.Child("dnsPolicy"), s.DNSPolicy, []corev1.DNSPolicy{corev1.DNSClusterFirst, corev1.DNSDefault}))
	}
	if s.TerminationGracePeriodSeconds != nil && *s.TerminationGracePeriodSeconds < 0 {
		v.errs(field.Invalid(p.Child("terminationGracePeriodSeconds"), *s.TerminationGracePeriodSeconds, "must be >= 0"))
	}
	volumes := v.volumes(s.Volumes, p.Child("volumes"))
	if len(s.Containers) == 0 {
		v.errs(field.Required(p.Child("containers"), "at least one container"))
	}
	names := sets.New[string]()
	hostPorts := map[string]bool{}
	for i := range s.InitContainers {
		v.container(&s.InitContainers[i], p.Child("initContainers").Index(i), names, volumes, hostPorts, true)
	}
	for i := range s.Containers {
		v.container(&s.Containers[i], p.Child("containers").Index(i), names, volumes, hostPorts, false)
	}
	v.add(Error, metavalidation.ValidateLabels(s.NodeSelector, p.Child("nodeSelector")))
	v.affinity(s.Affinity, p.Child("affinity"))
	v.tolerations(s.Tolerations, p.Child("tolerations"))
	for i, c := range s.TopologySpreadConstraints {
		cp := p.Child("topologySpreadConstraints").Index(i)
		if c.MaxSkew <= 0 {
			v.errs(field.Invalid(cp.Child("maxSkew"), c.MaxSkew, "must be greater than zero"))
		}
		if c.TopologyKey != hostnameTopology {
			v.errs(field.NotSupported(cp.Child("topologyKey"), c.TopologyKey, []string{hostnameTopology}))
		}
		switch c.WhenUnsatisfiable {
		case corev1.DoNotSchedule, corev1.ScheduleAnyway:
		default:
			v.errs(field.NotSupported(cp.Child("whenUnsatisfiable"), c.WhenUnsatisfiable,
				[]corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}))
		}
		v.add(Error, metavalidation.ValidateLabelSelector(c.LabelSelector, metavalidation.LabelSelectorValidationOptions{}, cp.Child("labelSelector")))
	}
	if s.PriorityClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.PriorityClassName) {
			v.errs(field.Invalid(p.Child("priorityClassName"), s.PriorityClassName, msg))
		}
	}
}

// volumes validates the pod's volumes and returns their names.
func (v *validator) volumes(vols []corev1.Volume, p *field.Path) sets.Set[string] {
	names := sets.New[string]()
	for i, vol := range vols {
		vp := p.Index(i)
		if vol.Name == "" {
			v.errs(field.Required(vp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(vol.Name) {
				v.errs(field.Invalid(vp.Child("name"), vol.Name, msg))
			}
			if names.Has(vol.Name) {
				v.errs(field.Duplicate(vp.Child("name"), vol.Name))
			}
			names.Insert(vol.Name)
		}
		n := 0
		if vol.EmptyDir != nil {
			n++
			switch vol.EmptyDir.Medium {
			case corev1.StorageMediumDefault, corev1.StorageMediumMemory:
			default:
				v.errs(field.NotSupported(vp.Child("emptyDir", "medium"), vol.EmptyDir.Medium,
					[]corev1.StorageMedium{corev1.StorageMediumDefault, corev1.StorageMediumMemory}))
			}
			if q := vol.EmptyDir.SizeLimit; q != nil && q.Sign() < 0 {
				v.errs(field.Invalid(vp.Child("emptyDir", "sizeLimit"), q.String(), "must be greater than or equal to 0"))
			}
		}
		if vol.HostPath != nil {
			n++
			if !path.IsAbs(vol.HostPath.Path) {
				v.errs(field.Invalid(vp.Child("hostPath", "path"), vol.HostPath.Path, "must be an absolute path"))
			}
			if t := vol.HostPath.Type; t != nil {
				switch *t {
				case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
					corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
				default:
					v.errs(field.NotSupported(vp.Child("hostPath", "type"), *t, []corev1.HostPathType{
						corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
						corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev}))
				}
			}
		}
		if cm := vol.ConfigMap; cm != nil {
			n++
			if cm.Name == "" {
				v.errs(field.Required(vp.Child("configMap", "name"), ""))
			}
			v.keyToPaths(cm.Items, cm.DefaultMode, vp.Child("configMap"))
		}
		if sec := vol.Secret; sec != nil {
			n++
			if sec.SecretName == "" {
				v.errs(field.Required(vp.Child("secret", "secretName"), ""))
			}
			v.keyToPaths(sec.Items, sec.DefaultMode, vp.Child("secret"))
		}
		if n == 0 {
			v.errs(field.Required(vp, "one volume source: emptyDir, hostPath, configMap or secret"))
		} else if n > 1 {
			v.errs(field.Forbidden(vp, "may not specify more than 1 volume type"))
		}
	}
	return names
}

func (v *validator) keyToPaths(items []corev1.KeyToPath, mode *int32, p *field.Path) {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		v.errs(field.Invalid(p.Child("defaultMode"), *mode, "must be a number between 0 and 0777 (octal), both inclusive"))
	}
	for i, it := range items {
		ip := p.Child("items").Index(i)
		if it.Key == "" {
			v.errs(field.Required(ip.Child("key"), ""))
		}
		if it.Path == "" {
			v.errs(field.Required(ip.Child("path"), ""))
		} else if path.IsAbs(it.Path) || strings.Contains("/"+it.Path+"/", "/../") || strings.HasPrefix(it.Path, "..") {
			v.errs(field.Invalid(ip.Child("path"), it.Path, "must be a relative path without '..'"))
		}
		if it.Mode != nil && (*it.Mode < 0 || *it.Mode > 0o777) {
			v.errs(field.Invalid(ip.Child("mode"), *it.Mode, "must be a number between 0 and 0777 (octal), both inclusive"))
		}
	}
}

func (v *validator) container(c *corev1.Container, p *field.Path, names sets.Set[string], volumes sets.Set[string], hostPorts map[string]bool, init bool) {
	if c.Name == "" {
		v.errs(field.Required(p.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			v.errs(field.Invalid(p.Child("name"), c.Name, msg))
		}
		if names.Has(c.Name) {
			v.errs(field.Duplicate(p.Child("name"), c.Name))
		}
		names.Insert(c.Name)
	}
	if strings.TrimSpace(c.Image) == "" {
		v.errs(field.Required(p.Child("image"), ""))
	} else if c.Image != strings.TrimSpace(c.Image) || strings.ContainsAny(c.Image, " \t\n") {
		v.errs(field.Invalid(p.Child("image"), c.Image, "must not contain spaces"))
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		v.errs(field.NotSupported(p.Child("imagePullPolicy"), c.ImagePullPolicy,
			[]corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}))
	}
	portNames := sets.New[string]()
	for i, port := range c.Ports {
		pp := p.Child("ports").Index(i)
		if port.Name != "" {
			for _, msg := range validation.IsValidPortName(port.Name) {
				v.errs(field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if portNames.Has(port.Name) {
				v.errs(field.Duplicate(pp.Child("name"), port.Name))
			}
			portNames.Insert(port.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
			v.errs(field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
		}
		if port.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
				v.errs(field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
			}
			key := string(port.Protocol) + "/" + itoa(int(port.HostPort))
			if hostPorts[key] {
				v.errs(field.Duplicate(pp.Child("hostPort"), key))
			}
			hostPorts[key] = true
		}
		switch port.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP:
		default:
			v.errs(field.NotSupported(pp.Child("protocol"), port.Protocol, []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}))
		}
	}
	for i, e := range c.Env {
		ep := p.Child("env").Index(i)
		if e.Name == "" {
			v.errs(field.Required(ep.Child("name"), ""))
		} else {
			for _, msg := range validation.IsRelaxedEnvVarName(e.Name) {
				v.errs(field.Invalid(ep.Child("name"), e.Name, msg))
			}
		}
		if vf := e.ValueFrom; vf != nil {
			n := 0
			if r := vf.ConfigMapKeyRef; r != nil {
				n++
				v.keyRef(r.Name, r.Key, ep.Child("valueFrom", "configMapKeyRef"))
			}
			if r := vf.SecretKeyRef; r != nil {
				n++
				v.keyRef(r.Name, r.Key, ep.Child("valueFrom", "secretKeyRef"))
			}
			if n != 1 {
				v.errs(field.Invalid(ep.Child("valueFrom"), "", "must specify exactly one of configMapKeyRef or secretKeyRef"))
			}
			if e.Value != "" {
				v.errs(field.Invalid(ep.Child("valueFrom"), "", "may not be specified when `value` is not empty"))
			}
		}
	}
	for i, e := range c.EnvFrom {
		ep := p.Child("envFrom").Index(i)
		for _, msg := range validation.IsRelaxedEnvVarName(e.Prefix) {
			if e.Prefix != "" {
				v.errs(field.Invalid(ep.Child("prefix"), e.Prefix, msg))
			}
		}
		n := 0
		if e.ConfigMapRef != nil {
			n++
			if e.ConfigMapRef.Name == "" {
				v.errs(field.Required(ep.Child("configMapRef", "name"), ""))
			}
		}
		if e.SecretRef != nil {
			n++
			if e.SecretRef.Name == "" {
				v.errs(field.Required(ep.Child("secretRef", "name"), ""))
			}
		}
		if n != 1 {
			v.errs(field.Invalid(ep, "", "must specify exactly one of configMapRef or secretRef"))
		}
	}
	v.resources(&c.Resources, p.Child("resources"))
	mounts := sets.New[string]()
	for i, m := range c.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if m.Name == "" {
			v.errs(field.Required(mp.Child("name"), ""))
		} else if !volumes.Has(m.Name) {
			v.errs(field.NotFound(mp.Child("name"), m.Name))
		}
		if !path.IsAbs(m.MountPath) {
			v.errs(field.Invalid(mp.Child("mountPath"), m.MountPath, "must be an absolute path"))
		} else if mounts.Has(path.Clean(m.MountPath)) {
			v.errs(field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mounts.Insert(path.Clean(m.MountPath))
	}
	if init {
		return
	}
	v.probe(c.LivenessProbe, p.Child("livenessProbe"), portNames, true)
	v.probe(c.ReadinessProbe, p.Child("readinessProbe"), portNames, false)
	v.probe(c.StartupProbe, p.Child("startupProbe"), portNames, true)
	if l := c.Lifecycle; l != nil && l.PreStop != nil {
		lp := p.Child("lifecycle", "preStop")
		h := l.PreStop
		switch {
		case h.Exec != nil && h.Sleep != nil:
			v.errs(field.Forbidden(lp, "may not specify more than 1 handler type"))
		case h.Exec != nil:
			if len(h.Exec.Command) == 0 {
				v.errs(field.Required(lp.Child("exec", "command"), ""))
			}
		case h.Sleep != nil:
			if h.Sleep.Seconds < 0 {
				v.errs(field.Invalid(lp.Child("sleep", "seconds"), h.Sleep.Seconds, "must be greater than or equal to 0"))
			}
		default:
			v.errs(field.Required(lp, "exec or sleep"))
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func (v *validator) keyRef(name, key string, p *field.Path) {
	if name == "" {
		v.errs(field.Required(p.Child("name"), ""))
	}
	if key == "" {
		v.errs(field.Required(p.Child("key"), ""))
		return
	}
	for _, msg := range validation.IsConfigMapKey(key) {
		v.errs(field.Invalid(p.Child("key"), key, msg))
	}
}

var enforcedResources = map[corev1.ResourceName]bool{corev1.ResourceCPU: true, corev1.ResourceMemory: true}

func (v *validator) resources(r *corev1.ResourceRequirements, p *field.Path) {
	check := func(list corev1.ResourceList, lp *field.Path) {
		for name, q := range list {
			np := lp.Key(string(name))
			switch {
			case enforcedResources[name]:
			case name == corev1.ResourceEphemeralStorage:
				v.e.addDiag(Diagnostic{Pos: v.e.doc.find(np.String()), Severity: Warning,
					Message: np.String() + ": ephemeral-storage is accepted but not enforced by gantry"})
			default:
				v.errs(field.NotSupported(np, name, []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}))
				continue
			}
			if q.Sign() < 0 {
				v.errs(field.Invalid(np, q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	check(r.Limits, p.Child("limits"))
	check(r.Requests, p.Child("requests"))
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			v.errs(field.Invalid(p.Child("requests").Key(string(name)), req.String(),
				"must be less than or equal to "+string(name)+" limit of "+lim.String()))
		}
	}
}

func (v *validator) probe(pr *corev1.Probe, p *field.Path, ports sets.Set[string], successOne bool) {
	if pr == nil {
		return
	}
	n := 0
	h := pr.ProbeHandler
	if h.Exec != nil {
		n++
		if len(h.Exec.Command) == 0 {
			v.errs(field.Required(p.Child("exec", "command"), ""))
		}
	}
	if g := h.HTTPGet; g != nil {
		n++
		hp := p.Child("httpGet")
		v.probePort(g.Port, hp.Child("port"), ports)
		if !strings.HasPrefix(g.Path, "/") {
			v.errs(field.Invalid(hp.Child("path"), g.Path, "must start with /"))
		}
		if g.Scheme != corev1.URISchemeHTTP {
			v.errs(field.NotSupported(hp.Child("scheme"), g.Scheme, []corev1.URIScheme{corev1.URISchemeHTTP}))
		}
		for i, hd := range g.HTTPHeaders {
			for _, msg := range validation.IsHTTPHeaderName(hd.Name) {
				v.errs(field.Invalid(hp.Child("httpHeaders").Index(i).Child("name"), hd.Name, msg))
			}
		}
	}
	if t := h.TCPSocket; t != nil {
		n++
		v.probePort(t.Port, p.Child("tcpSocket", "port"), ports)
	}
	if g := h.GRPC; g != nil {
		n++
		for _, msg := range validation.IsValidPortNum(int(g.Port)) {
			v.errs(field.Invalid(p.Child("grpc", "port"), g.Port, msg))
		}
	}
	switch {
	case n == 0:
		v.errs(field.Required(p, "must specify a handler type: exec, httpGet, tcpSocket or grpc"))
	case n > 1:
		v.errs(field.Forbidden(p, "may not specify more than 1 handler type"))
	}
	v.add(Error, nonNegative(p.Child("initialDelaySeconds"), &pr.InitialDelaySeconds))
	for _, f := range []struct {
		name string
		val  int32
	}{{"timeoutSeconds", pr.TimeoutSeconds}, {"periodSeconds", pr.PeriodSeconds}, {"successThreshold", pr.SuccessThreshold}, {"failureThreshold", pr.FailureThreshold}} {
		if f.val < 1 {
			v.errs(field.Invalid(p.Child(f.name), f.val, "must be greater than or equal to 1"))
		}
	}
	if successOne && pr.SuccessThreshold != 1 {
		v.errs(field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
}

func (v *validator) probePort(port intstr.IntOrString, p *field.Path, ports sets.Set[string]) {
	if port.Type == intstr.Int {
		for _, msg := range validation.IsValidPortNum(int(port.IntVal)) {
			v.errs(field.Invalid(p, port.IntVal, msg))
		}
		return
	}
	for _, msg := range validation.IsValidPortName(port.StrVal) {
		v.errs(field.Invalid(p, port.StrVal, msg))
		return
	}
	if !ports.Has(port.StrVal) {
		v.errs(field.Invalid(p, port.StrVal, "no container port of this container has that name"))
	}
}

func (v *validator) affinity(a *corev1.Affinity, p *field.Path) {
	if a == nil {
		return
	}
	if na := a.NodeAffinity; na != nil {
		np := p.Child("nodeAffinity")
		if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			rp := np.Child("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
			if len(r.NodeSelectorTerms) == 0 {
				v.errs(field.Required(rp, "must have at least one node selector term"))
			}
			for i, t := range r.NodeSelectorTerms {
				v.nodeSelectorRequirements(t.MatchExpressions, rp.Index(i).Child("matchExpressions"))
			}
		}
		for i, pt := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			pp := np.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
			if pt.Weight < 1 || pt.Weight > 100 {
				v.errs(field.Invalid(pp.Child("weight"), pt.Weight, "must be in the range 1-100"))
			}
			v.nodeSelectorRequirements(pt.Preference.MatchExpressions, pp.Child("preference", "matchExpressions"))
		}
	}
	if aa := a.PodAntiAffinity; aa != nil {
		for i, t := range aa.RequiredDuringSchedulingIgnoredDuringExecution {
			tp := p.Child("podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution").Index(i)
			if t.TopologyKey != hostnameTopology {
				v.errs(field.NotSupported(tp.Child("topologyKey"), t.TopologyKey, []string{hostnameTopology}))
			}
			v.add(Error, metavalidation.ValidateLabelSelector(t.LabelSelector, metavalidation.LabelSelectorValidationOptions{}, tp.Child("labelSelector")))
		}
	}
}

func (v *validator) nodeSelectorRequirements(reqs []corev1.NodeSelectorRequirement, p *field.Path) {
	for i, r := range reqs {
		rp := p.Index(i)
		v.add(Error, metavalidation.ValidateLabelName(r.Key, rp.Child("key")))
		switch r.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(r.Values) == 0 {
				v.errs(field.Required(rp.Child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
			}
		case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				v.errs(field.Forbidden(rp.Child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if len(r.Values) != 1 {
				v.errs(field.Required(rp.Child("values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"))
			}
		default:
			v.errs(field.NotSupported(rp.Child("operator"), r.Operator, []corev1.NodeSelectorOperator{
				corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists,
				corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt}))
		}
	}
}

func (v *validator) tolerations(ts []corev1.Toleration, p *field.Path) {
	for i, t := range ts {
		tp := p.Index(i)
		if t.Key != "" {
			v.add(Error, metavalidation.ValidateLabelName(t.Key, tp.Child("key")))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
		case corev1.TolerationOpExists:
			if t.Value != "" {
				v.errs(field.Invalid(tp.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			v.errs(field.NotSupported(tp.Child("operator"), t.Operator, []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			v.errs(field.Invalid(tp.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			v.errs(field.NotSupported(tp.Child("effect"), t.Effect, []corev1.TaintEffect{
				corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			v.errs(field.Invalid(tp.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
	}
}
