package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

// Defaults of a Reconciler.
const (
	// DefaultResync is the periodic resync of the reconcile loop.
	DefaultResync = 30 * time.Second
	// DefaultRevisionHistoryLimit is how many revisions an app's history shows when
	// the Deployment does not set spec.revisionHistoryLimit (Kubernetes' default).
	DefaultRevisionHistoryLimit = 10
	// debounce gathers a burst of watch events into one reconcile.
	debounce = 100 * time.Millisecond
	// maxConflicts bounds how often one reconcile re-reads and recomputes after a
	// compare-and-swap conflict before it waits for the next trigger.
	maxConflicts = 8
	// secretUnavailable is the pod condition an agent sets on a pod it holds back
	// because its secret material cannot be fetched
	// (agentclient.PodConditionSecretUnavailable).
	secretUnavailable = "SecretUnavailable"
)

// Reconciler is the GitOps loop: the newest valid git revision, the pods, nodes and
// app states of the store → planner.Compute → the plan committed with
// compare-and-swap. It is level-triggered: each round recomputes from full state,
// so a missed trigger costs latency, never correctness.
//
// Rounds run only on the elected leader (etcd election "leader/reconcile"), on a
// new revision, on any pod or node change, at Plan.Wake and every resync period.
// The git source is followed on every server (fetches are cheap and a new leader
// starts from the newest snapshot at once).
//
// An invalid revision (manifest diagnostics with errors) is never applied: the
// apps keep converging to the last valid revision and show Stalled with every
// file:line error. An unreachable source shows Waiting; running apps are untouched.
type Reconciler struct {
	st   *store.Store
	src  *gitsync.Syncer
	opts reconcileOpts

	kick chan struct{}

	mu      sync.Mutex
	good    *goodRevision
	stalled *stalledRevision
	srcErr  string
	retryAt time.Time
	leader  bool
	rounds  int64
}

type goodRevision struct {
	revision string
	desired  *manifest.Desired
	// gitHash maps an app key to git's pod-template hash (for rollback pins).
	gitHash map[string]string
	// historyLimit maps an app key to its revisionHistoryLimit.
	historyLimit map[string]int
}

type stalledRevision struct {
	revision string
	errors   []string
}

type reconcileOpts struct {
	logger  *slog.Logger
	now     func() time.Time
	resync  time.Duration
	cfg     planner.Config
	secret  []byte
	loadOpt []manifest.Option
	gate    <-chan struct{}
	secrets secretCache // set by WithSecretCache (material.go)
}

// ReconcileOption configures a Reconciler.
type ReconcileOption func(*reconcileOpts)

// WithResync sets the periodic resync. Default DefaultResync (30 s).
func WithResync(d time.Duration) ReconcileOption {
	return func(o *reconcileOpts) { o.resync = d }
}

// WithPlannerConfig sets the planner's configuration. Default the zero Config
// (the planner's documented defaults).
func WithPlannerConfig(c planner.Config) ReconcileOption {
	return func(o *reconcileOpts) { o.cfg = c }
}

// WithWebhookSecret enables POST /api/v1/webhooks/git with this shared secret
// (HMAC key, or GitLab's token). Without it the endpoint answers 404.
func WithWebhookSecret(secret []byte) ReconcileOption {
	return func(o *reconcileOpts) { o.secret = slices.Clone(secret) }
}

// WithStartGate makes Run wait until gate is closed before it follows the source
// and reconciles (`gantry up` imports images first). Default: start at once.
func WithStartGate(gate <-chan struct{}) ReconcileOption {
	return func(o *reconcileOpts) { o.gate = gate }
}

// WithReconcileLogger sets the logger. Default slog.Default().
func WithReconcileLogger(l *slog.Logger) ReconcileOption {
	return func(o *reconcileOpts) { o.logger = l }
}

// WithReconcileClock sets the clock handed to the planner as Input.Now. Default
// time.Now.
func WithReconcileClock(now func() time.Time) ReconcileOption {
	return func(o *reconcileOpts) { o.now = now }
}

// WithManifestOptions passes options to manifest.LoadFiles for every revision.
func WithManifestOptions(opts ...manifest.Option) ReconcileOption {
	return func(o *reconcileOpts) { o.loadOpt = append(o.loadOpt, opts...) }
}

// NewReconciler returns the loop over st following src. It does nothing until Run
// (Server.Start calls it when the server was given WithReconciler).
func NewReconciler(st *store.Store, src *gitsync.Syncer, opts ...ReconcileOption) *Reconciler {
	o := reconcileOpts{resync: DefaultResync}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.resync <= 0 {
		o.resync = DefaultResync
	}
	return &Reconciler{st: st, src: src, opts: o, kick: make(chan struct{}, 1)}
}

// Kick asks for a reconcile round soon; bursts coalesce. Never blocks.
func (r *Reconciler) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Sync asks the git source for an immediate fetch (`gantry sync`, webhooks).
func (r *Reconciler) Sync() { r.src.Trigger() }

// SourceStatus is the state of the git source as the API shows it.
type SourceStatus struct {
	URL            string    `json:"url"`
	Ref            string    `json:"ref,omitempty"`
	Path           string    `json:"path,omitempty"`
	FetchedCommit  string    `json:"fetchedRevision,omitempty"`
	AppliedCommit  string    `json:"appliedRevision,omitempty"`
	StalledCommit  string    `json:"stalledRevision,omitempty"`
	Diagnostics    []string  `json:"diagnostics,omitempty"`
	LastError      string    `json:"lastError,omitempty"`
	Failures       int       `json:"failures,omitempty"`
	LastSuccess    time.Time `json:"lastSuccess,omitempty"`
	Leader         bool      `json:"leader"`
	ReconcileCount int64     `json:"reconciles"`
}

// Status returns the source's state: fetched, applied and stalled revisions and
// the last fetch error (credentials scrubbed by gitsync).
func (r *Reconciler) Status() SourceStatus {
	ss := r.src.Status()
	src := r.src.Source()
	out := SourceStatus{URL: gitsync.SanitizeURL(src.URL), Ref: src.Ref, Path: src.Path,
		FetchedCommit: ss.Revision, Failures: ss.Failures, LastSuccess: ss.LastSuccess}
	if ss.LastError != nil {
		out.LastError = ss.LastError.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.good != nil {
		out.AppliedCommit = r.good.revision
	}
	if r.stalled != nil {
		out.StalledCommit, out.Diagnostics = r.stalled.revision, slices.Clone(r.stalled.errors)
	}
	out.Leader, out.ReconcileCount = r.leader, r.rounds
	return out
}

// SourceError records a failed fetch (wire it as gitsync.WithOnError): apps show
// Waiting (or Stalled for an unverified commit) until the next good fetch.
func (r *Reconciler) SourceError(err error, retryIn time.Duration) {
	r.mu.Lock()
	r.srcErr = err.Error()
	r.retryAt = r.opts.now().Add(retryIn)
	r.mu.Unlock()
	r.Kick()
}

// WebhookHandler returns the handler of POST /api/v1/webhooks/git, or nil when no
// webhook secret was given.
func (r *Reconciler) WebhookHandler() (http.Handler, error) {
	if len(r.opts.secret) == 0 {
		return nil, nil
	}
	h, err := gitsync.NewWebhookHandler(gitsync.WebhookConfig{Secret: r.opts.secret, Logger: r.opts.logger}, r.src)
	if err != nil {
		return nil, fmt.Errorf("webhook handler: %w", err)
	}
	return h, nil
}

// onSnapshot decodes a new revision. An invalid one is recorded as stalled and not
// applied; a valid one replaces the desired state.
func (r *Reconciler) onSnapshot(snap *gitsync.Snapshot) {
	desired, diags := manifest.LoadFiles(snap.Files, r.opts.loadOpt...)
	if !diags.HasErrors() {
		desired = r.withConfigHashes(desired) // config-hash annotations; see material.go
	}
	r.mu.Lock()
	r.srcErr, r.retryAt = "", time.Time{}
	if diags.HasErrors() {
		var errs []string
		for _, d := range diags.Errors() {
			errs = append(errs, d.String())
		}
		r.stalled = &stalledRevision{revision: snap.Revision, errors: errs}
		r.opts.logger.Warn("git revision not applied: invalid manifests", "revision", short(snap.Revision), "errors", len(errs))
	} else {
		r.stalled = nil
		r.good = &goodRevision{revision: snap.Revision, desired: desired, gitHash: map[string]string{}, historyLimit: map[string]int{}}
		for _, d := range desired.Deployments {
			key := planner.AppKey(planner.KindDeployment, nsOr(d.Namespace), d.Name)
			r.good.gitHash[key] = planner.TemplateHash(&d.Spec.Template)
			if d.Spec.RevisionHistoryLimit != nil {
				r.good.historyLimit[key] = int(*d.Spec.RevisionHistoryLimit)
			}
		}
		r.opts.logger.Info("git revision loaded", "revision", short(snap.Revision), "objects", len(desired.Objects))
	}
	r.mu.Unlock()
	r.Kick()
}

func nsOr(ns string) string {
	if ns == "" {
		return api.DefaultNamespace
	}
	return ns
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// Run follows the source and, while this server leads, reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	if r.opts.gate != nil {
		select {
		case <-ctx.Done():
			return
		case <-r.opts.gate:
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.src.Run(ctx, r.onSnapshot)
	}()
	host, _ := os.Hostname()
	whileLeader(ctx, r.st.Client(), "reconcile", host, func(ctx context.Context) {
		r.opts.logger.Info("leading the reconcile loop", "resync", r.opts.resync)
		r.setLeader(true)
		r.lead(ctx)
		r.setLeader(false)
	})
	wg.Wait()
}

func (r *Reconciler) setLeader(v bool) {
	r.mu.Lock()
	r.leader = v
	r.mu.Unlock()
}

// lead runs rounds while leading: watches of pods and nodes kick it.
func (r *Reconciler) lead(ctx context.Context) {
	go watchKick(ctx, r, r.st.Pods())
	go watchKick(ctx, r, r.st.Nodes())
	resync := time.NewTicker(r.opts.resync)
	defer resync.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	r.Kick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			// Gather the burst (our own writes echo back through the watches).
			sleepCtx(ctx, debounce)
			select {
			case <-r.kick:
			default:
			}
		case <-resync.C:
		case <-wake.C:
		}
		next, err := r.Reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			r.opts.logger.Warn("reconcile", "err", err)
			next = r.opts.now().Add(time.Second)
		}
		wake.Stop()
		if !next.IsZero() {
			wake.Reset(max(next.Sub(r.opts.now()), debounce))
		} else {
			wake.Reset(time.Hour)
		}
	}
}

func watchKick[T any, PT interface {
	*T
	store.Object
}](ctx context.Context, r *Reconciler, res *store.Resource[T, PT]) {
	for ctx.Err() == nil {
		ch, err := res.Watch(ctx, "", store.WatchOptions{})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		for range ch {
			r.Kick()
		}
	}
}

// Reconcile runs one round now and returns when the plan wants to run again
// (Plan.Wake; zero for none). A compare-and-swap conflict re-reads and recomputes.
// Before the first valid revision it changes nothing but app status.
func (r *Reconciler) Reconcile(ctx context.Context) (time.Time, error) {
	var err error
	for range maxConflicts {
		var wake time.Time
		wake, err = r.round(ctx)
		if !errors.Is(err, api.ErrConflict) && !errors.Is(err, api.ErrAlreadyExists) {
			r.mu.Lock()
			r.rounds++
			r.mu.Unlock()
			return wake, err
		}
		r.opts.logger.Debug("reconcile conflict, recomputing", "err", err)
	}
	return time.Time{}, fmt.Errorf("reconcile: %d conflicts in a row: %w", maxConflicts, err)
}

// overlay is what the source adds to every app's status.
type overlay struct {
	health    planner.Health
	message   string
	lastError string
	diags     []string
}

func (r *Reconciler) state() (*goodRevision, overlay) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ov overlay
	if r.stalled != nil {
		ov.health = store.Stalled
		ov.lastError = fmt.Sprintf("git revision %s not applied: %d error(s); running revision %s: fix the manifests and push",
			short(r.stalled.revision), len(r.stalled.errors), shortOr(r.good))
		ov.diags = slices.Clone(r.stalled.errors)
	}
	if r.srcErr == "" {
		return r.good, ov
	}
	st := r.src.Status()
	if st.LastError == nil {
		return r.good, ov // a later fetch succeeded
	}
	var uv *gitsync.UnverifiedError
	msg := ""
	if errors.As(st.LastError, &uv) {
		ov.health = store.Stalled
		msg = "git head not applied: " + r.srcErr
	} else {
		// The source's current trouble comes first; a stalled revision stays listed.
		ov.health = store.Waiting
		msg = fmt.Sprintf("git source fetch failed (retry at %s; running apps untouched): %s", r.retryAt.UTC().Format(time.RFC3339), r.srcErr)
	}
	if ov.lastError != "" {
		msg += "; " + ov.lastError
	}
	ov.lastError = msg
	return r.good, ov
}

func shortOr(g *goodRevision) string {
	if g == nil {
		return "none"
	}
	return short(g.revision)
}

// round is one read → Compute → commit. Errors wrapping api.ErrConflict mean the
// store moved under it: the caller recomputes.
func (r *Reconciler) round(ctx context.Context) (time.Time, error) {
	good, ov := r.state()
	now := r.opts.now()
	appList, err := r.st.Apps().List(ctx, "", store.ListOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("list apps: %w", err)
	}
	stored := map[string]*store.App{}
	states := map[string]planner.AppState{}
	for _, a := range appList.Items {
		stored[a.Key] = a
		states[a.Key] = a.State
	}
	if good == nil {
		// Nothing valid fetched yet: never compute against an empty desired state
		// (that would prune everything); only tell the apps why they wait.
		return time.Time{}, r.writeOverlayOnly(ctx, stored, ov)
	}
	pods, err := r.st.Pods().List(ctx, "", store.ListOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("list pods: %w", err)
	}
	nodes, err := r.st.Nodes().List(ctx, "", store.ListOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("list nodes: %w", err)
	}
	jobs, err := r.st.Jobs().List(ctx, "", store.ListOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("list jobs: %w", err)
	}
	plan := planner.Compute(planner.Input{
		Desired: good.desired, Observed: pods.Items, Nodes: nodes.Items, Apps: states,
		Now: now, Seed: now.UnixNano(), Config: r.opts.cfg, Jobs: jobs.Items,
	})
	podRV := map[string]string{}
	for _, p := range pods.Items {
		podRV[p.Namespace+"/"+p.Name] = p.ResourceVersion
	}
	// Preempt, then Stop: the agents stop what leaves the store.
	for _, e := range plan.Preempt {
		if err := r.deletePod(ctx, e.Namespace, e.Pod, podRV); err != nil {
			return time.Time{}, fmt.Errorf("preempt pod %s/%s: %w", e.Namespace, e.Pod, err)
		}
	}
	for _, s := range plan.Stop {
		if err := r.deletePod(ctx, s.Namespace, s.Pod, podRV); err != nil {
			return time.Time{}, fmt.Errorf("stop pod %s/%s (%s): %w", s.Namespace, s.Pod, s.App, err)
		}
	}
	for _, d := range plan.DeleteJobs {
		if _, err := r.st.Jobs().Delete(ctx, d.Namespace, d.Name, ""); err != nil && !errors.Is(err, api.ErrNotFound) {
			return time.Time{}, fmt.Errorf("delete job %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	if err := r.createRuns(ctx, plan); err != nil {
		return time.Time{}, err
	}
	for _, pl := range plan.Place {
		p := pl.Pod.DeepCopy()
		p.Spec.NodeName = pl.Node
		p.ResourceVersion = ""
		p.Status = corev1.PodStatus{Phase: corev1.PodPending}
		if _, err := r.st.Pods().Create(ctx, p); err != nil {
			return time.Time{}, fmt.Errorf("place pod %s/%s on %s: %w", p.Namespace, p.Name, pl.Node, err)
		}
	}
	for _, ad := range plan.Adopt {
		if _, err := r.st.Pods().GuaranteedUpdate(ctx, ad.Namespace, ad.Pod, func(p *corev1.Pod) error {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[planner.AnnotationApp] = ad.App
			if ad.Revision != "" {
				if p.Labels == nil {
					p.Labels = map[string]string{}
				}
				p.Labels[planner.LabelPodTemplateHash] = ad.Revision
			}
			return nil
		}); err != nil && !errors.Is(err, api.ErrNotFound) {
			return time.Time{}, fmt.Errorf("adopt pod %s/%s: %w", ad.Namespace, ad.Pod, err)
		}
	}
	if err := r.writeApps(ctx, good, ov, plan, stored, waitReasons(pods.Items)); err != nil {
		return time.Time{}, err
	}
	if err := r.writeJobStatuses(ctx, jobs.Items, plan, states); err != nil {
		return time.Time{}, err
	}
	for _, ev := range plan.Events {
		r.recordEvent(ctx, ev, now)
	}
	if len(plan.Place)+len(plan.Stop)+len(plan.Preempt) > 0 {
		r.opts.logger.Info("reconciled", "revision", short(good.revision), "placed", len(plan.Place),
			"stopped", len(plan.Stop), "preempted", len(plan.Preempt), "unplaceable", len(plan.Unplaceable))
	}
	return plan.Wake, nil
}

func (r *Reconciler) deletePod(ctx context.Context, ns, name string, rv map[string]string) error {
	_, err := r.st.Pods().Delete(ctx, ns, name, rv[ns+"/"+name])
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	return err
}

// writeApps writes every app whose state or status changed, with compare-and-swap.
func (r *Reconciler) writeApps(ctx context.Context, good *goodRevision, ov overlay, plan planner.Plan, stored map[string]*store.App, waits map[string]string) error {
	keys := map[string]bool{}
	for k := range plan.Status {
		keys[k] = true
	}
	for k := range plan.Apps {
		keys[k] = true
	}
	for _, k := range slices.Sorted(mapKeys(keys)) {
		old := stored[k]
		next := &store.App{Key: k}
		if old != nil {
			next = old.DeepCopyObject().(*store.App)
		} else {
			kind, ns, name, err := store.ParseAppKey(k)
			if err != nil {
				continue
			}
			next.Namespace, next.Name = ns, store.AppObjectName(kind, name)
			next.Labels = map[string]string{"gantry.io/kind": string(kind), "gantry.io/name": name}
		}
		if st, ok := plan.Apps[k]; ok {
			next.State = st
		}
		ps := plan.Status[k]
		status := store.AppStatus{
			SyncedRevision: good.revision, Health: ps.Health, WorkloadHealth: ps.Health, Revision: ps.Revision,
			Progress: ps.Progress, Message: ps.Message,
		}
		if old != nil {
			status.History = old.Status.History
		}
		status.History = history(next.State, status.History, good, k)
		if w := waits[k]; w != "" && status.Message == "" && ps.Health != planner.Healthy {
			status.Message = w
			// A pod held back for its secrets cannot start until Vault answers:
			// that is Degraded (the "Vault unreachable" contract), not
			// a rollout that merely takes time.
			if ps.Health == planner.Progressing && strings.Contains(w, secretUnavailable) {
				status.Health = planner.Degraded
			}
		}
		if next.State.Pin != nil {
			status.Message = strings.TrimSpace(status.Message + fmt.Sprintf(" (pinned to revision %d until git changes; `gantry rollback --unpin` releases)", revNumber(next.State, next.State.Pin.Revision)))
		}
		applyOverlay(&status, ov)
		if old != nil && sameStatus(old.Status, status) && !hasState(plan.Apps, k) {
			continue
		}
		status.Updated = metav1.NewTime(r.opts.now())
		next.Status = status
		var err error
		if old == nil {
			_, err = r.st.Apps().Create(ctx, next)
		} else {
			_, err = r.st.Apps().Update(ctx, next)
		}
		if err != nil {
			return fmt.Errorf("write app %s: %w", k, err)
		}
	}
	for _, k := range plan.ForgetApps {
		old := stored[k]
		if old == nil {
			continue
		}
		if _, err := r.st.Apps().Delete(ctx, old.Namespace, old.Name, old.ResourceVersion); err != nil && !errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("forget app %s: %w", k, err)
		}
	}
	return nil
}

// waitReasons names, per app, why one of its pods is not ready yet, from what the
// agent reported: a held-back pod (SecretUnavailable), a failed mount, a waiting
// container (ImagePullBackOff, CrashLoopBackOff…). It is what keeps a Progressing
// app from hanging silently.
func waitReasons(pods []*corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		app := p.Annotations[planner.AnnotationApp]
		if app == "" || out[app] != "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		why := ""
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				why = "-"
			}
		}
		if why == "-" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Status == corev1.ConditionTrue && c.Type != corev1.PodScheduled && c.Type != corev1.PodInitialized && c.Message != "" {
				why = string(c.Type) + ": " + c.Message
			}
		}
		if why == "" && p.Status.Message != "" {
			why = p.Status.Reason + ": " + p.Status.Message
		}
		if why == "" {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
					why = strings.TrimSuffix(w.Reason+": "+w.Message, ": ")
					break
				}
			}
		}
		if why != "" {
			out[app] = "waiting: pod " + p.Name + ": " + why
		}
	}
	return out
}

func hasState(m map[string]planner.AppState, k string) bool {
	_, ok := m[k]
	return ok
}

func mapKeys[K comparable, V any](m map[K]V) iter.Seq[K] { return maps.Keys(m) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func applyOverlay(s *store.AppStatus, ov overlay) {
	if ov.health != "" {
		s.Health = ov.health
	}
	s.LastError, s.Diagnostics = ov.lastError, ov.diags
}

func sameStatus(a, b store.AppStatus) bool {
	a.Updated, b.Updated = metav1.Time{}, metav1.Time{}
	ja, _ := jsonMarshal(a)
	jb, _ := jsonMarshal(b)
	return string(ja) == string(jb)
}

// writeOverlayOnly updates only the source part of stored apps' status (before the
// first valid revision, after a restart).
func (r *Reconciler) writeOverlayOnly(ctx context.Context, stored map[string]*store.App, ov overlay) error {
	for _, old := range stored {
		next := old.DeepCopyObject().(*store.App)
		applyOverlay(&next.Status, ov)
		if ov.health == "" {
			next.Status.Health = next.Status.WorkloadHealth
		}
		if sameStatus(old.Status, next.Status) {
			continue
		}
		next.Status.Updated = metav1.NewTime(r.opts.now())
		if _, err := r.st.Apps().Update(ctx, next); err != nil {
			return fmt.Errorf("write app %s: %w", old.Key, err)
		}
	}
	return nil
}

// history renders the planner's revisions, trimmed to revisionHistoryLimit.
func history(st planner.AppState, prev []store.AppRevision, good *goodRevision, key string) []store.AppRevision {
	gitRev := map[string]string{}
	for _, h := range prev {
		gitRev[h.Hash] = h.GitRevision
	}
	limit := DefaultRevisionHistoryLimit
	if l, ok := good.historyLimit[key]; ok {
		limit = max(l, 1)
	}
	var out []store.AppRevision
	for _, rv := range st.Revisions {
		h := store.AppRevision{Number: rv.Number, Hash: rv.Hash, Created: rv.Created, Available: rv.Available,
			Current: rv.Hash == st.Target, GitRevision: gitRev[rv.Hash]}
		if h.GitRevision == "" && good.gitHash[key] == rv.Hash {
			h.GitRevision = good.revision
		}
		if rv.Template != nil {
			for _, c := range rv.Template.Spec.Containers {
				h.Images = append(h.Images, c.Image)
			}
		}
		out = append(out, h)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

func revNumber(st planner.AppState, hash string) int64 {
	for _, rv := range st.Revisions {
		if rv.Hash == hash {
			return rv.Number
		}
	}
	return 0
}

// recordEvent stores a planner event on the app; the same event (object, reason,
// message) is stored once with a growing count (recordDeduped, jobs.go). A failure
// is logged, not fatal (events are a courtesy, the status is the truth).
func (r *Reconciler) recordEvent(ctx context.Context, ev planner.Event, now time.Time) {
	kind, ns, name, err := store.ParseAppKey(ev.App)
	if err != nil {
		ns, name = api.DefaultNamespace, "gantry"
	}
	e := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: eventName(kindName(kind), ns, name, ev.Reason, ev.Message)},
		InvolvedObject: corev1.ObjectReference{Kind: kindName(kind), Namespace: ns, Name: name},
		Reason:         ev.Reason, Message: ev.Message,
		Source:         corev1.EventSource{Component: "gantry-reconciler"},
		FirstTimestamp: metav1.NewTime(now), LastTimestamp: metav1.NewTime(now), Count: 1,
		Type: corev1.EventTypeNormal,
	}
	if strings.Contains(ev.Reason, "Fail") || strings.Contains(ev.Reason, "RolledBack") || warningReasons[ev.Reason] {
		e.Type = corev1.EventTypeWarning
	}
	r.recordDeduped(ctx, e, now)
}

func kindName(k planner.AppKind) string {
	switch k {
	case planner.KindDeployment:
		return "Deployment"
	case planner.KindPod:
		return "Pod"
	case planner.KindJob:
		return "Job"
	case planner.KindCronJob:
		return "CronJob"
	}
	return string(k)
}

// Rollback pins app (ns, kind.name store name or plain name) to revision number
// toRevision (0 = the revision before the current one), or releases the pin with
// unpin. The pin holds until git's template for the app changes. Returns
// api.ErrNotFound for an unknown app or revision, api.ErrFailedPrecondition when
// there is nothing to roll back to.
func (r *Reconciler) Rollback(ctx context.Context, ns, name string, toRevision int64, unpin bool) (*store.App, error) {
	app, err := findApp(ctx, r.st, ns, name)
	if err != nil {
		return nil, err
	}
	good, _ := r.state()
	out, err := r.st.Apps().GuaranteedUpdate(ctx, app.Namespace, app.Name, func(a *store.App) error {
		if unpin {
			a.State.Pin = nil
			return nil
		}
		var target *planner.Revision
		cur := a.State.Target
		if toRevision == 0 {
			for i := len(a.State.Revisions) - 1; i >= 0; i-- {
				rv := a.State.Revisions[i]
				if rv.Hash != cur && rv.Template != nil && rv.Number < revNumber(a.State, cur) {
					target = &a.State.Revisions[i]
					break
				}
			}
			if target == nil {
				return fmt.Errorf("app %s has no earlier revision to roll back to: %w", a.Key, api.ErrFailedPrecondition)
			}
		} else {
			for i := range a.State.Revisions {
				if a.State.Revisions[i].Number == toRevision {
					target = &a.State.Revisions[i]
				}
			}
			if target == nil || target.Template == nil {
				return fmt.Errorf("app %s: revision %d is not in its history: %w", a.Key, toRevision, api.ErrNotFound)
			}
		}
		gitHash := ""
		if good != nil {
			gitHash = good.gitHash[a.Key]
		}
		a.State.Pin = &planner.Pin{Revision: target.Hash, GitRevision: gitHash}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Kick()
	return out, nil
}

// findApp resolves a user's app name: a store name ("deployment.web") or a plain
// workload name ("web"), which must be unambiguous in ns.
func findApp(ctx context.Context, st *store.Store, ns, name string) (*store.App, error) {
	ns = nsOr(ns)
	if a, err := st.Apps().Get(ctx, ns, name); err == nil {
		return a, nil
	} else if !errors.Is(err, api.ErrNotFound) {
		return nil, err
	}
	list, err := st.Apps().List(ctx, ns, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	var found []*store.App
	for _, a := range list.Items {
		if _, n, ok := store.ParseAppObjectName(a.Name); ok && n == name {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("app %q in namespace %q: %w", name, ns, api.ErrNotFound)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, a := range found {
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("app %q in namespace %q is ambiguous (%s): name one with its kind: %w", name, ns, strings.Join(names, ", "), api.ErrInvalidArgument)
}
