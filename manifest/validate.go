package manifest

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	// CronJob time zones must validate the same on every host, tzdata or not.
	_ "time/tzdata"
)

// validator collects the findings of one document.
type validator struct {
	e *entry
	o *options
}

// under reports whether field path p is at or below path base.
func under(p, base string) bool {
	if base == "" {
		return true
	}
	return p == base || strings.HasPrefix(p, base+".") || strings.HasPrefix(p, base+"[")
}

// add turns field errors into diagnostics at their fields' positions, dropping those
// about values the decoder already rejected.
func (v *validator) add(sev Severity, errs field.ErrorList) {
next:
	for _, err := range errs {
		for _, b := range v.e.bad {
			// A finding at or below a dropped value, or about its container, is an
			// echo of the decode error already reported.
			if under(err.Field, b) || under(b, err.Field) && err.Field != "" {
				continue next
			}
		}
		msg := err.ErrorBody()
		if err.Field != "" && err.Field != "<nil>" {
			msg = err.Field + ": " + msg
		}
		v.e.addDiag(Diagnostic{Pos: v.e.doc.find(err.Field), Severity: sev, Message: msg})
	}
}

func (v *validator) errs(errs ...*field.Error) { v.add(Error, errs) }

func validateEntry(e *entry, o *options) {
	v := &validator{e: e, o: o}
	meta := field.NewPath("metadata")
	nameFn := apivalidation.NameIsDNSSubdomain
	switch e.info.kind {
	case "Service":
		nameFn = apivalidation.NameIsDNS1035Label
	case "Namespace":
		nameFn = apivalidation.NameIsDNSLabel
	}
	v.add(Error, apivalidation.ValidateObjectMeta(e.meta, e.info.namespaced, nameFn, meta))
	switch o := e.obj.(type) {
	case *corev1.Pod:
		v.podSpec(&o.Spec, field.NewPath("spec"), "Pod")
	case *appsv1.Deployment:
		v.deployment(o)
	case *batchv1.Job:
		v.jobSpec(&o.Spec, field.NewPath("spec"))
	case *batchv1.CronJob:
		v.cronJob(o)
	case *corev1.Service:
		v.service(o)
	case *corev1.ConfigMap:
		v.configMap(o)
	case *corev1.Secret:
		v.secret(o)
	case *SecretStore:
		v.secretStore(o)
	case *ExternalSecret:
		v.externalSecret(o)
	}
}

func nonNegative(p *field.Path, val *int32) field.ErrorList {
	if val == nil {
		return nil
	}
	return apivalidation.ValidateNonnegativeField(int64(*val), p)
}

func (v *validator) templateLabels(m *metav1.ObjectMeta, p *field.Path) {
	v.add(Error, metavalidation.ValidateLabels(m.Labels, p.Child("labels")))
	v.add(Error, apivalidation.ValidateAnnotations(m.Annotations, p.Child("annotations")))
}

func (v *validator) deployment(d *appsv1.Deployment) {
	s := &d.Spec
	p := field.NewPath("spec")
	v.add(Error, nonNegative(p.Child("replicas"), s.Replicas))
	v.add(Error, nonNegative(p.Child("revisionHistoryLimit"), s.RevisionHistoryLimit))
	v.add(Error, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), p.Child("minReadySeconds")))
	if s.ProgressDeadlineSeconds != nil {
		if *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
			v.errs(field.Invalid(p.Child("progressDeadlineSeconds"), *s.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	v.templateLabels(&s.Template.ObjectMeta, p.Child("template", "metadata"))
	v.selector(s.Selector, s.Template.Labels, p.Child("selector"), p.Child("template", "metadata", "labels"))
	switch s.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.Strategy.RollingUpdate != nil {
			v.errs(field.Forbidden(p.Child("strategy", "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ru := s.Strategy.RollingUpdate
		rp := p.Child("strategy", "rollingUpdate")
		v.intOrPercent(ru.MaxSurge, rp.Child("maxSurge"))
		v.intOrPercent(ru.MaxUnavailable, rp.Child("maxUnavailable"))
		if isZero(ru.MaxSurge) && isZero(ru.MaxUnavailable) {
			v.errs(field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
		}
		if ru.MaxUnavailable.Type == intstr.String && percent(ru.MaxUnavailable) > 100 {
			v.errs(field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "must not be greater than 100%"))
		}
	default:
		v.errs(field.NotSupported(p.Child("strategy", "type"), s.Strategy.Type,
			[]appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}))
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		v.errs(field.NotSupported(p.Child("template", "spec", "restartPolicy"), s.Template.Spec.RestartPolicy,
			[]corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	v.podSpec(&s.Template.Spec, p.Child("template", "spec"), "Deployment")
}

func percent(x *intstr.IntOrString) int {
	var n int
	fmt.Sscanf(strings.TrimSuffix(x.StrVal, "%"), "%d", &n)
	return n
}

func isZero(x *intstr.IntOrString) bool {
	if x == nil {
		return true
	}
	if x.Type == intstr.Int {
		return x.IntVal == 0
	}
	return x.StrVal == "0%" || x.StrVal == "0"
}

func (v *validator) intOrPercent(x *intstr.IntOrString, p *field.Path) {
	if x == nil {
		return
	}
	if x.Type == intstr.Int {
		v.add(Error, apivalidation.ValidateNonnegativeField(int64(x.IntVal), p))
		return
	}
	if msgs := validation.IsValidPercent(x.StrVal); len(msgs) > 0 {
		v.errs(field.Invalid(p, x.StrVal, strings.Join(msgs, "; ")))
	}
}

// selector checks a workload selector: required, valid, and matching the template.
func (v *validator) selector(sel *metav1.LabelSelector, tmpl map[string]string, p, labelsPath *field.Path) {
	if sel == nil {
		v.errs(field.Required(p, ""))
		return
	}
	errs := metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, p)
	v.add(Error, errs)
	if len(errs) > 0 {
		return
	}
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		v.errs(field.Invalid(p, "{}", "empty selector is invalid for deployment"))
		return
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		v.errs(field.Invalid(p, "", err.Error()))
		return
	}
	if !s.Matches(labels.Set(tmpl)) {
		v.errs(field.Invalid(labelsPath, labels.Set(tmpl).String(), "`selector` does not match template `labels`"))
	}
}

func (v *validator) jobSpec(s *batchv1.JobSpec, p *field.Path) {
	v.add(Error, nonNegative(p.Child("completions"), s.Completions))
	v.add(Error, nonNegative(p.Child("parallelism"), s.Parallelism))
	v.add(Error, nonNegative(p.Child("backoffLimit"), s.BackoffLimit))
	v.add(Error, nonNegative(p.Child("ttlSecondsAfterFinished"), s.TTLSecondsAfterFinished))
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		v.errs(field.Invalid(p.Child("activeDeadlineSeconds"), *s.ActiveDeadlineSeconds, "must be greater than 0"))
	}
	if s.CompletionMode != nil {
		switch *s.CompletionMode {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			if s.Completions == nil {
				v.errs(field.Required(p.Child("completions"), "when completion mode is Indexed"))
			}
		default:
			v.errs(field.NotSupported(p.Child("completionMode"), *s.CompletionMode,
				[]batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
	}
	v.templateLabels(&s.Template.ObjectMeta, p.Child("template", "metadata"))
	rp := s.Template.Spec.RestartPolicy
	if rp == "" {
		v.errs(field.Required(p.Child("template", "spec", "restartPolicy"), "OnFailure or Never (a Job has no default)"))
	} else if rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		v.errs(field.NotSupported(p.Child("template", "spec", "restartPolicy"), rp,
			[]corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	}
	v.podSpec(&s.Template.Spec, p.Child("template", "spec"), "Job")
}

func (v *validator) cronJob(c *batchv1.CronJob) {
	p := field.NewPath("spec")
	s := &c.Spec
	if len(c.Name) > 52 {
		v.errs(field.Invalid(field.NewPath("metadata", "name"), c.Name, "must be no more than 52 characters"))
	}
	sched := strings.TrimSpace(s.Schedule)
	switch {
	case sched == "":
		v.errs(field.Required(p.Child("schedule"), ""))
	default:
		if err := parseCronSchedule(sched); err != nil {
			v.errs(field.Invalid(p.Child("schedule"), s.Schedule, err.Error()))
		}
		if s.TimeZone != nil && (strings.Contains(sched, "TZ=")) {
			v.errs(field.Invalid(p.Child("schedule"), s.Schedule, "cannot use TZ or CRON_TZ in schedule when timeZone is set"))
		}
	}
	if s.TimeZone != nil {
		if _, err := time.LoadLocation(*s.TimeZone); err != nil || *s.TimeZone == "" || strings.EqualFold(*s.TimeZone, "local") {
			v.errs(field.Invalid(p.Child("timeZone"), *s.TimeZone, "unknown time zone: use an IANA name such as Europe/Berlin or Etc/UTC"))
		}
	}
	switch s.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		v.errs(field.NotSupported(p.Child("concurrencyPolicy"), s.ConcurrencyPolicy,
			[]batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}))
	}
	if s.StartingDeadlineSeconds != nil && *s.StartingDeadlineSeconds < 0 {
		v.errs(field.Invalid(p.Child("startingDeadlineSeconds"), *s.StartingDeadlineSeconds, "must be greater than or equal to 0"))
	}
	v.add(Error, nonNegative(p.Child("successfulJobsHistoryLimit"), s.SuccessfulJobsHistoryLimit))
	v.add(Error, nonNegative(p.Child("failedJobsHistoryLimit"), s.FailedJobsHistoryLimit))
	v.templateLabels(&s.JobTemplate.ObjectMeta, p.Child("jobTemplate", "metadata"))
	v.jobSpec(&s.JobTemplate.Spec, p.Child("jobTemplate", "spec"))
}

func (v *validator) configMap(c *corev1.ConfigMap) {
	p := field.NewPath("data")
	size := 0
	for k, val := range c.Data {
		size += len(k) + len(val)
		for _, msg := range validation.IsConfigMapKey(k) {
			v.errs(field.Invalid(p.Key(k), k, msg))
		}
		if _, dup := c.BinaryData[k]; dup {
			v.errs(field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
	}
	for k, val := range c.BinaryData {
		size += len(k) + len(val)
		for _, msg := range validation.IsConfigMapKey(k) {
			v.errs(field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
	}
	if size > corev1.MaxSecretSize {
		v.errs(field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
}

// plainSecretMessage is the error of a Secret with values in git.
const plainSecretMessage = "secret values must not live in git; use an ExternalSecret (or load with --allow-plain-secrets)"

func (v *validator) secret(s *corev1.Secret) {
	for _, f := range []struct {
		name string
		keys []string
	}{{"data", keysOf(s.Data)}, {"stringData", keysOf(s.StringData)}} {
		if len(f.keys) == 0 {
			continue
		}
		if !v.o.allowPlainSecrets {
			v.e.addDiag(Diagnostic{Pos: v.e.doc.find(f.name), Severity: Error, Message: f.name + ": " + plainSecretMessage})
		}
		for _, k := range f.keys {
			for _, msg := range validation.IsConfigMapKey(k) {
				v.errs(field.Invalid(field.NewPath(f.name).Key(k), k, msg))
			}
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (v *validator) secretStore(s *SecretStore) {
	p := field.NewPath("spec", "provider")
	vault := s.Spec.Provider.Vault
	if vault == nil {
		v.errs(field.Required(p.Child("vault"), "gantry supports the vault provider only"))
		return
	}
	vp := p.Child("vault")
	if vault.Server == "" {
		v.errs(field.Required(vp.Child("server"), "the Vault address, e.g. https://vault.example:8200"))
	} else if u, err := url.Parse(vault.Server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errs(field.Invalid(vp.Child("server"), vault.Server, "must be an http:// or https:// URL"))
	}
	if vault.Version != "v1" && vault.Version != "v2" {
		v.errs(field.NotSupported(vp.Child("version"), vault.Version, []string{"v1", "v2"}))
	}
	if vault.Path != nil && strings.Trim(*vault.Path, "/") == "" {
		v.errs(field.Invalid(vp.Child("path"), *vault.Path, "must name a KV mount, e.g. secret"))
	}
	ap := vp.Child("auth")
	a := vault.Auth
	switch {
	case a.TokenSecretRef == nil && a.AppRole == nil:
		v.errs(field.Required(ap, "one of tokenSecretRef or appRole"))
	case a.TokenSecretRef != nil && a.AppRole != nil:
		v.errs(field.Forbidden(ap, "tokenSecretRef and appRole are mutually exclusive"))
	case a.TokenSecretRef != nil:
		v.credentialRef(a.TokenSecretRef, ap.Child("tokenSecretRef"))
	default:
		r := a.AppRole
		rp := ap.Child("appRole")
		if r.RoleID == "" && r.RoleRef == nil {
			v.errs(field.Required(rp.Child("roleId"), "roleId or roleRef"))
		}
		if r.RoleRef != nil {
			v.credentialRef(r.RoleRef, rp.Child("roleRef"))
		}
		v.credentialRef(&r.SecretRef, rp.Child("secretRef"))
	}
}

// credentialRef checks the shape of a store credential reference. What it names is a
// server-side credential (see CredentialFile), not a Secret in git, so no object in
// the tree has to define it.
func (v *validator) credentialRef(r *SecretKeySelector, p *field.Path) {
	if r.Name == "" {
		v.errs(field.Required(p.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(r.Name) {
			v.errs(field.Invalid(p.Child("name"), r.Name, msg))
		}
	}
	if r.Key == "" {
		v.errs(field.Required(p.Child("key"), ""))
	} else {
		for _, msg := range validation.IsConfigMapKey(r.Key) {
			v.errs(field.Invalid(p.Child("key"), r.Key, msg))
		}
	}
}

func (v *validator) externalSecret(es *ExternalSecret) {
	p := field.NewPath("spec")
	s := &es.Spec
	if s.SecretStoreRef.Name == "" {
		v.errs(field.Required(p.Child("secretStoreRef", "name"), ""))
	}
	switch s.SecretStoreRef.Kind {
	case "SecretStore", "ClusterSecretStore":
	default:
		v.errs(field.NotSupported(p.Child("secretStoreRef", "kind"), s.SecretStoreRef.Kind, []string{"SecretStore", "ClusterSecretStore"}))
	}
	for _, msg := range validation.IsDNS1123Subdomain(s.Target.Name) {
		v.errs(field.Invalid(p.Child("target", "name"), s.Target.Name, msg))
	}
	if s.RefreshInterval != nil && s.RefreshInterval.Duration < 0 {
		v.errs(field.Invalid(p.Child("refreshInterval"), s.RefreshInterval.Duration.String(), "must not be negative"))
	}
	if len(s.Data) == 0 && len(s.DataFrom) == 0 {
		v.errs(field.Required(p.Child("data"), "data or dataFrom"))
	}
	seen := map[string]bool{}
	for i, d := range s.Data {
		dp := p.Child("data").Index(i)
		if d.SecretKey == "" {
			v.errs(field.Required(dp.Child("secretKey"), ""))
		} else {
			for _, msg := range validation.IsConfigMapKey(d.SecretKey) {
				v.errs(field.Invalid(dp.Child("secretKey"), d.SecretKey, msg))
			}
			if seen[d.SecretKey] {
				v.errs(field.Duplicate(dp.Child("secretKey"), d.SecretKey))
			}
			seen[d.SecretKey] = true
		}
		if d.RemoteRef.Key == "" {
			v.errs(field.Required(dp.Child("remoteRef", "key"), "the Vault path below the store's mount"))
		}
	}
	for i, d := range s.DataFrom {
		dp := p.Child("dataFrom").Index(i)
		if d.Extract == nil {
			v.errs(field.Required(dp.Child("extract"), "gantry supports dataFrom[].extract only"))
			continue
		}
		if d.Extract.Key == "" {
			v.errs(field.Required(dp.Child("extract", "key"), ""))
		}
		if d.Extract.Property != "" {
			v.errs(field.Forbidden(dp.Child("extract", "property"), "extract copies every property; use data[] for one"))
		}
	}
}

// parseCronSchedule parses a CronJob schedule as Kubernetes does (cron.ParseStandard). robfig's
// parser panics on a TZ= or CRON_TZ= prefix with nothing after it, so that shape is refused
// first, and any other panic is turned into an error: input must never crash the loader.
func parseCronSchedule(sched string) (err error) {
	if (strings.HasPrefix(sched, "TZ=") || strings.HasPrefix(sched, "CRON_TZ=")) && !strings.Contains(sched, " ") {
		return fmt.Errorf("a time zone prefix must be followed by a schedule, as in \"CRON_TZ=Europe/Berlin 0 3 * * *\"")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot parse schedule: %v", r)
		}
	}()
	_, err = cron.ParseStandard(sched)
	return err
}
