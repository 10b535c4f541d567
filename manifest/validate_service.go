package manifest

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func (v *validator) service(svc *corev1.Service) {
	p := field.NewPath("spec")
	s := &svc.Spec
	switch s.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
		v.e.addDiag(Diagnostic{Pos: v.e.doc.find("spec.type"), Severity: Error,
			Message: "spec.type: " + string(s.Type) + " is not supported by gantry (supported: ClusterIP, NodePort)"})
	default:
		v.errs(field.NotSupported(p.Child("type"), s.Type, []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort}))
	}
	headless := s.ClusterIP == corev1.ClusterIPNone
	if s.ClusterIP != "" && !headless {
		if _, err := netip.ParseAddr(s.ClusterIP); err != nil {
			v.errs(field.Invalid(p.Child("clusterIP"), s.ClusterIP, `must be "None", empty, or a valid IP address`))
		}
	}
	if headless && s.Type == corev1.ServiceTypeNodePort {
		v.errs(field.Invalid(p.Child("clusterIP"), s.ClusterIP, "may not be set to 'None' for NodePort services"))
	}
	v.add(Error, metavalidation.ValidateLabels(s.Selector, p.Child("selector")))
	if len(s.Ports) == 0 && !headless {
		v.errs(field.Required(p.Child("ports"), ""))
	}
	names := sets.New[string]()
	portProto := sets.New[string]()
	for i, port := range s.Ports {
		pp := p.Child("ports").Index(i)
		if len(s.Ports) > 1 && port.Name == "" {
			v.errs(field.Required(pp.Child("name"), "when more than one port is defined"))
		}
		if port.Name != "" {
			for _, msg := range validation.IsDNS1123Label(port.Name) {
				v.errs(field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if names.Has(port.Name) {
				v.errs(field.Duplicate(pp.Child("name"), port.Name))
			}
			names.Insert(port.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(port.Port)) {
			v.errs(field.Invalid(pp.Child("port"), port.Port, msg))
		}
		switch port.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP:
		default:
			v.errs(field.NotSupported(pp.Child("protocol"), port.Protocol, []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}))
		}
		key := string(port.Protocol) + "/" + itoa(int(port.Port))
		if portProto.Has(key) {
			v.errs(field.Duplicate(pp, key))
		}
		portProto.Insert(key)
		if port.TargetPort.Type == intstr.Int && port.TargetPort.IntVal == 0 {
			// Unset and defaulted from an invalid port: already reported.
		} else if port.TargetPort.Type == intstr.Int {
			for _, msg := range validation.IsValidPortNum(int(port.TargetPort.IntVal)) {
				v.errs(field.Invalid(pp.Child("targetPort"), port.TargetPort.IntVal, msg))
			}
		} else {
			for _, msg := range validation.IsValidPortName(port.TargetPort.StrVal) {
				v.errs(field.Invalid(pp.Child("targetPort"), port.TargetPort.StrVal, msg))
			}
		}
		if port.NodePort != 0 {
			if s.Type != corev1.ServiceTypeNodePort {
				v.errs(field.Forbidden(pp.Child("nodePort"), "may only be set when `type` is 'NodePort'"))
			}
			for _, msg := range validation.IsValidPortNum(int(port.NodePort)) {
				v.errs(field.Invalid(pp.Child("nodePort"), port.NodePort, msg))
			}
		}
	}
	fams := sets.New[corev1.IPFamily]()
	for i, f := range s.IPFamilies {
		fp := p.Child("ipFamilies").Index(i)
		if f != corev1.IPv4Protocol && f != corev1.IPv6Protocol {
			v.errs(field.NotSupported(fp, f, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}))
		} else if fams.Has(f) {
			v.errs(field.Duplicate(fp, f))
		}
		fams.Insert(f)
	}
	if len(s.IPFamilies) > 2 {
		v.errs(field.TooMany(p.Child("ipFamilies"), len(s.IPFamilies), 2))
	}
	if pol := s.IPFamilyPolicy; pol != nil {
		switch *pol {
		case corev1.IPFamilyPolicySingleStack:
			if len(s.IPFamilies) > 1 {
				v.errs(field.Invalid(p.Child("ipFamilies"), s.IPFamilies, "when ipFamilyPolicy is SingleStack, at most one family may be given"))
			}
		case corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack:
		default:
			v.errs(field.NotSupported(p.Child("ipFamilyPolicy"), *pol, []corev1.IPFamilyPolicy{
				corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack}))
		}
	}
	switch s.SessionAffinity {
	case corev1.ServiceAffinityNone:
		if s.SessionAffinityConfig != nil {
			v.errs(field.Forbidden(p.Child("sessionAffinityConfig"), "must not be set when `sessionAffinity` is None"))
		}
	case corev1.ServiceAffinityClientIP:
		if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > 86400 {
				v.errs(field.Invalid(p.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), t, "must be greater than 0 and less than 86400"))
			}
		}
	default:
		v.errs(field.NotSupported(p.Child("sessionAffinity"), s.SessionAffinity, []corev1.ServiceAffinity{corev1.ServiceAffinityNone, corev1.ServiceAffinityClientIP}))
	}
}
