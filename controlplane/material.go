package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/secrets"
	"gantry.io/gantry/store"
)

// AnnotationConfigHash on a pod template: ConfigHash of the ConfigMaps and Secrets the
// template uses. A changed value changes the template and so rolls the workload
// through the normal rollout.
const AnnotationConfigHash = api.Domain + "/config-hash"

// Material is what a pod needs besides its spec: the ConfigMaps and Secrets it
// references (by name, all in the pod's namespace) and a hash over them.
type Material struct {
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
	// Hash is "" when the pod references nothing, else "sha256:…" over every
	// referenced object's name and content (secrets by their resolved hash).
	Hash string
}

// MaterialSource gives the material of a pod. Errors are classed: api.ErrUnavailable
// (a referenced secret cannot be resolved now; the text names the store and the Vault
// path, never a value or a token).
type MaterialSource interface {
	PodMaterial(ctx context.Context, pod *corev1.Pod) (Material, error)
}

// DesiredMaterial is the MaterialSource of a server: ConfigMaps and plain Secrets from
// the last good desired state, ExternalSecret targets from a secrets.Cache.
//
// A reference that nothing in the desired state defines is left out of the material;
// the executor then fails a non-optional reference (as the kubelet does with
// CreateContainerConfigError) and ignores an optional one. An ExternalSecret target
// whose latest refresh failed, or which has not been resolved yet, makes the whole
// material unavailable: the pod must not start with a stale or partial secret.
type DesiredMaterial struct {
	desired  func() *manifest.Desired
	cache    *secrets.Cache
	redactor *secrets.Redactor
}

// NewDesiredMaterial returns a MaterialSource over desired (the reconcile loop's
// last good revision; nil or returning nil reads as empty) and cache (nil: no
// ExternalSecrets). red, if not nil, scrubs error texts once more before they leave.
func NewDesiredMaterial(desired func() *manifest.Desired, cache *secrets.Cache, red *secrets.Redactor) *DesiredMaterial {
	return &DesiredMaterial{desired: desired, cache: cache, redactor: red}
}

// PodMaterial implements MaterialSource.
func (d *DesiredMaterial) PodMaterial(ctx context.Context, pod *corev1.Pod) (Material, error) {
	var des *manifest.Desired
	if d.desired != nil {
		des = d.desired()
	}
	ns := podNamespace(pod)
	cmRefs, secRefs := agentclient.PodReferences(pod)
	m := Material{}
	h := sha256.New()
	for _, ref := range cmRefs {
		cm := findConfigMap(des, ns, ref.Name)
		if cm == nil {
			continue
		}
		if m.ConfigMaps == nil {
			m.ConfigMaps = map[string]*corev1.ConfigMap{}
		}
		m.ConfigMaps[ref.Name] = cm.DeepCopy()
		fmt.Fprintf(h, "configmap %s %s\n", ref.Name, configMapHash(cm))
	}
	for _, ref := range secRefs {
		sec, hash, err := d.secret(des, ns, ref.Name)
		if err != nil {
			return Material{}, d.scrub(fmt.Errorf("pod %s/%s: secret %q: %w", ns, pod.Name, ref.Name, err))
		}
		if sec == nil {
			continue
		}
		if m.Secrets == nil {
			m.Secrets = map[string]*corev1.Secret{}
		}
		m.Secrets[ref.Name] = sec
		fmt.Fprintf(h, "secret %s %s\n", ref.Name, hash)
	}
	if len(m.ConfigMaps)+len(m.Secrets) > 0 {
		m.Hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	return m, nil
}

// secret returns the Secret named name in ns: an ExternalSecret's target from the
// cache, else a plain Secret of the desired state, else nil.
func (d *DesiredMaterial) secret(des *manifest.Desired, ns, name string) (*corev1.Secret, string, error) {
	if es := findExternalSecret(des, ns, name); es != nil {
		if d.cache == nil {
			return nil, "", fmt.Errorf("external secret %s/%s: no secret cache on this server: %w", ns, es.Name, api.ErrUnavailable)
		}
		res, err := d.cache.Get(secrets.Ref{Namespace: ns, Name: es.Name})
		if err != nil {
			return nil, "", err // names the ExternalSecret, the store and the path
		}
		if res == nil {
			return nil, "", fmt.Errorf("external secret %s/%s: not resolved yet: %w", ns, es.Name, api.ErrUnavailable)
		}
		data := make(map[string][]byte, len(res.Data))
		for k, v := range res.Data {
			data[k] = append([]byte(nil), v...)
		}
		return &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Type:       corev1.SecretTypeOpaque, Data: data,
		}, res.Hash, nil
	}
	for _, s := range desiredSecrets(des) {
		if podNamespaceOf(s.Namespace) == ns && s.Name == name {
			out := s.DeepCopy()
			if out.Data == nil && len(out.StringData) > 0 {
				out.Data = map[string][]byte{}
			}
			for k, v := range out.StringData {
				out.Data[k] = []byte(v)
			}
			out.StringData = nil
			return out, secrets.Hash(out.Data), nil
		}
	}
	return nil, "", nil
}

// scrub replaces err's text by its redacted form, keeping its classes.
func (d *DesiredMaterial) scrub(err error) error {
	if d.redactor == nil {
		return err
	}
	return &scrubbedError{msg: d.redactor.Error(err), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Is reports the wrapped error's classes, without exposing its text through Unwrap.
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }

func podNamespace(pod *corev1.Pod) string { return podNamespaceOf(pod.Namespace) }

func podNamespaceOf(ns string) string {
	if ns == "" {
		return api.DefaultNamespace
	}
	return ns
}

func findConfigMap(d *manifest.Desired, ns, name string) *corev1.ConfigMap {
	if d == nil {
		return nil
	}
	for _, cm := range d.ConfigMaps {
		if podNamespaceOf(cm.Namespace) == ns && cm.Name == name {
			return cm
		}
	}
	return nil
}

func desiredSecrets(d *manifest.Desired) []*corev1.Secret {
	if d == nil {
		return nil
	}
	return d.Secrets
}

// targetName is the Secret an ExternalSecret produces (spec.target.name, default its
// own name).
func targetName(es *manifest.ExternalSecret) string {
	if es.Spec.Target.Name != "" {
		return es.Spec.Target.Name
	}
	return es.Name
}

func findExternalSecret(d *manifest.Desired, ns, secretName string) *manifest.ExternalSecret {
	if d == nil {
		return nil
	}
	for _, es := range d.ExternalSecrets {
		if podNamespaceOf(es.Namespace) == ns && targetName(es) == secretName {
			return es
		}
	}
	return nil
}

// configMapHash is sha256 over a ConfigMap's data and binaryData, in key order.
func configMapHash(cm *corev1.ConfigMap) string {
	h := sha256.New()
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "d %d:%s %d:%s\n", len(k), k, len(cm.Data[k]), cm.Data[k])
	}
	keys = keys[:0]
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "b %d:%s %d:", len(k), k, len(cm.BinaryData[k]))
		h.Write(cm.BinaryData[k])
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SecretHashes returns the current hash of every ExternalSecret of d that the cache
// has resolved, by Ref. ExternalSecrets not resolved yet are absent.
func SecretHashes(c *secrets.Cache, d *manifest.Desired) map[secrets.Ref]string {
	out := map[secrets.Ref]string{}
	if c == nil || d == nil {
		return out
	}
	for _, es := range d.ExternalSecrets {
		ref := secrets.Ref{Namespace: podNamespaceOf(es.Namespace), Name: es.Name}
		if st, ok := c.Status(ref); ok && st.Hash != "" {
			out[ref] = st.Hash
		}
	}
	return out
}

// ConfigHash returns the configuration hash of a pod template of a workload in
// namespace ns: "sha256:…" over the content of every ConfigMap and the resolved hash
// (from hashes, keyed by ExternalSecret; see SecretHashes) of every Secret the
// template references, or "" when it references none. The reconcile loop puts it
// into the template's AnnotationConfigHash before planning, so that a changed value
// changes the pod revision and the workload rolls at its controlled rate.
//
// Left out of the hash, so that their changes never restart pods: ExternalSecrets
// annotated gantry.io/restart-on-change: "false" (their files are updated in place by
// the agent), and references that nothing defines. An ExternalSecret not resolved yet
// contributes "unresolved", so the hash changes once when it first resolves — before
// that, its pods are held back by the agent and run nowhere.
func ConfigHash(tmpl *corev1.PodTemplateSpec, ns string, d *manifest.Desired, hashes map[secrets.Ref]string) string {
	if tmpl == nil {
		return ""
	}
	ns = podNamespaceOf(ns)
	cmRefs, secRefs := agentclient.SpecReferences(&tmpl.Spec)
	var lines []string
	for _, ref := range cmRefs {
		if cm := findConfigMap(d, ns, ref.Name); cm != nil {
			lines = append(lines, "configmap "+ref.Name+" "+configMapHash(cm))
		}
	}
	for _, ref := range secRefs {
		if es := findExternalSecret(d, ns, ref.Name); es != nil {
			if es.Annotations[api.AnnotationRestartOnChange] == "false" {
				continue
			}
			h, ok := hashes[secrets.Ref{Namespace: ns, Name: es.Name}]
			if !ok {
				h = "unresolved"
			}
			lines = append(lines, "externalsecret "+ref.Name+" "+h)
			continue
		}
		for _, s := range desiredSecrets(d) {
			if podNamespaceOf(s.Namespace) == ns && s.Name == ref.Name {
				data := map[string][]byte{}
				for k, v := range s.Data {
					data[k] = v
				}
				for k, v := range s.StringData {
					data[k] = []byte(v)
				}
				lines = append(lines, "secret "+ref.Name+" "+secrets.Hash(data))
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// WithMaterialSource sets where the agents' material endpoint
// (GET /api/v1/nodes/{node}/pods/{ns}/{name}/material) gets ConfigMaps and Secrets.
// Default none: the endpoint answers 503 for a pod that references any.
func WithMaterialSource(ms MaterialSource) Option { return func(o *serverOpts) { o.material = ms } }

// podMaterial serves GET /api/v1/nodes/{node}/pods/{ns}/{name}/material: agents only,
// and only for a pod bound to the calling node (else 403). The values are in this
// response and nowhere else; errors carry reasons only.
func (s *Server) podMaterial(w http.ResponseWriter, r *http.Request, id Identity) error {
	node, ns, name := r.PathValue("node"), r.PathValue("ns"), r.PathValue("name")
	if id.Role != api.RoleNode {
		return fmt.Errorf("%s %q may not get the material of pod %s/%s: only agents fetch pod material: %w", id.Role, id.Name, ns, name, api.ErrPermissionDenied)
	}
	if id.Name != node {
		return fmt.Errorf("node %q may not get the material of pods on node %q: %w", id.Name, node, api.ErrPermissionDenied)
	}
	pod, err := s.st.Pods().Get(r.Context(), ns, name)
	if err != nil {
		return fmt.Errorf("material of pod %s/%s: %w", ns, name, err)
	}
	if pod.Spec.NodeName != node {
		return fmt.Errorf("node %q may not get the material of pod %s/%s: pod is not bound to this node: %w", node, ns, name, api.ErrPermissionDenied)
	}
	cms, secs := agentclient.PodReferences(pod)
	if len(cms)+len(secs) == 0 {
		return writeJSON(w, http.StatusOK, agentclient.Material{})
	}
	if s.opts.material == nil {
		return fmt.Errorf("material of pod %s/%s: this server has no material source: %w", ns, name, api.ErrUnavailable)
	}
	m, err := s.opts.material.PodMaterial(r.Context(), pod)
	if err != nil {
		if errors.Is(err, api.ErrUnavailable) {
			// A missing key is also ErrNotFound; the pod exists, so answer 503 only.
			return fmt.Errorf("%s: %w", err.Error(), api.ErrUnavailable)
		}
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, agentclient.Material{ConfigMaps: m.ConfigMaps, Secrets: m.Secrets, Hash: m.Hash})
}

// WithSecretCache gives the reconcile loop the server's secrets.Cache: each loaded
// revision's SecretStores and ExternalSecrets are Set on it, and each Deployment's
// template gets AnnotationConfigHash. Default none: templates get a config hash from
// ConfigMaps and plain Secrets only.
func WithSecretCache(c *secrets.Cache) ReconcileOption {
	return func(o *reconcileOpts) { o.secrets = c }
}

// Desired returns the last good desired state (templates annotated with their config
// hash), or nil before one was loaded. It fits NewDesiredMaterial.
func (r *Reconciler) Desired() *manifest.Desired {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.good == nil {
		return nil
	}
	return r.good.desired
}

// OnSecretReport is the callback for secrets.Cache.Run: when a value changed it
// recomputes the config hashes of the running revision and kicks a reconcile, so the
// Deployments that use the secret roll. Failures change nothing (running pods stay).
func (r *Reconciler) OnSecretReport(rep secrets.Report) {
	if len(rep.Changed) == 0 {
		return
	}
	r.mu.Lock()
	good := r.good
	r.mu.Unlock()
	if good == nil {
		return
	}
	d := r.withConfigHashes(good.desired)
	r.mu.Lock()
	if r.good == good {
		r.good.desired = d
		for _, dep := range d.Deployments {
			key := planner.AppKey(planner.KindDeployment, nsOr(dep.Namespace), dep.Name)
			r.good.gitHash[key] = planner.TemplateHash(&dep.Spec.Template)
		}
	}
	r.mu.Unlock()
	r.Kick()
}

// withConfigHashes returns d with every Deployment's template annotated with its
// ConfigHash (a shallow copy; the annotated Deployments are deep copies). It hands
// d's stores and ExternalSecrets to the secret cache first, and refreshes what is
// new. A Deployment that uses an ExternalSecret the cache has no value for yet keeps
// the config hash of its stored target revision, so a server restart while Vault is
// down does not roll anything; a new Deployment gets the "unresolved" hash (its pods
// wait for the secret on the agent anyway).
func (r *Reconciler) withConfigHashes(d *manifest.Desired) *manifest.Desired {
	if d == nil {
		return nil
	}
	c := r.opts.secrets
	if c != nil {
		var stores []manifest.SecretStore
		for _, s := range append(append([]*manifest.SecretStore{}, d.SecretStores...), d.ClusterSecretStores...) {
			stores = append(stores, *s)
		}
		var ess []manifest.ExternalSecret
		for _, es := range d.ExternalSecrets {
			ess = append(ess, *es)
		}
		c.Set(stores, ess)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.Refresh(ctx) // resolves the new and changed ones; the others are not due
		cancel()
	}
	var stored map[string]*store.App // loaded on first need
	return annotateConfigHashes(d, SecretHashes(c, d), func() map[string]*store.App {
		if stored == nil {
			stored = r.storedApps()
		}
		return stored
	})
}

// annotateConfigHashes returns d with every Deployment's pod template carrying the
// hash of its resolved configuration (AnnotationConfigHash); Deployments whose
// annotation is already right are shared, not copied. A Deployment using a secret
// with no value yet keeps the hash of its stored target (stored is called only then),
// so a Vault outage rolls nothing.
func annotateConfigHashes(d *manifest.Desired, hashes map[secrets.Ref]string, stored func() map[string]*store.App) *manifest.Desired {
	out := *d
	out.Deployments = make([]*appsv1.Deployment, len(d.Deployments))
	for i, dep := range d.Deployments {
		ns := nsOr(dep.Namespace)
		h := ConfigHash(&dep.Spec.Template, ns, d, hashes)
		if h != "" && unresolvedSecret(&dep.Spec.Template, ns, d, hashes) {
			if prev := targetConfigHash(stored()[planner.AppKey(planner.KindDeployment, ns, dep.Name)]); prev != "" {
				h = prev
			}
		}
		if dep.Spec.Template.Annotations[AnnotationConfigHash] == h {
			out.Deployments[i] = dep
			continue
		}
		cp := dep.DeepCopy()
		if h == "" {
			delete(cp.Spec.Template.Annotations, AnnotationConfigHash)
		} else {
			if cp.Spec.Template.Annotations == nil {
				cp.Spec.Template.Annotations = map[string]string{}
			}
			cp.Spec.Template.Annotations[AnnotationConfigHash] = h
		}
		out.Deployments[i] = cp
	}
	return &out
}

func unresolvedSecret(tmpl *corev1.PodTemplateSpec, ns string, d *manifest.Desired, hashes map[secrets.Ref]string) bool {
	_, secs := agentclient.SpecReferences(&tmpl.Spec)
	for _, ref := range secs {
		if es := findExternalSecret(d, ns, ref.Name); es != nil && es.Annotations[api.AnnotationRestartOnChange] != "false" {
			if _, ok := hashes[secrets.Ref{Namespace: ns, Name: es.Name}]; !ok {
				return true
			}
		}
	}
	return false
}

func (r *Reconciler) storedApps() map[string]*store.App {
	out := map[string]*store.App{}
	if r.st == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := r.st.Apps().List(ctx, "", store.ListOptions{})
	if err != nil {
		r.opts.logger.Warn("config hash: stored apps not readable; unresolved secrets hash as unresolved", "error", err)
		return out
	}
	for _, a := range list.Items {
		out[a.Key] = a
	}
	return out
}

// targetConfigHash is the config hash of an app's target revision, "" if unknown.
func targetConfigHash(a *store.App) string {
	if a == nil {
		return ""
	}
	for _, rv := range a.State.Revisions {
		if rv.Hash == a.State.Target && rv.Template != nil {
			return rv.Template.Annotations[AnnotationConfigHash]
		}
	}
	return ""
}

var _ MaterialSource = (*DesiredMaterial)(nil)

// secretCache is the type of the reconcile option's field (an alias keeps
// reconcile.go free of the secrets import).
type secretCache = *secrets.Cache
