package planner

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/planner/plannertest"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of planner/testdata/*.txt")

// TestScenarios runs the golden scenario files in testdata. Each block is a command
// line, a "----" line and the expected output up to a blank line; -rewrite
// regenerates the outputs (review the diff).
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenarioFile(t, f) })
	}
}

type block struct {
	pre  []string // comments and blank lines before the command
	cmd  string
	want string
	line int
}

func parseScenario(t *testing.T, path string) []block {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []block
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		b := block{pre: pre, cmd: l, line: i + 1}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command %q is not followed by ----", path, i+1, l)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		b.want = strings.Join(want, "\n")
		out = append(out, b)
	}
	// Drop the trailing empty line of the file.
	for len(pre) > 0 && pre[len(pre)-1] == "" {
		pre = pre[:len(pre)-1]
	}
	if len(pre) > 0 {
		out = append(out, block{pre: pre})
	}
	return out
}

func runScenarioFile(t *testing.T, path string) {
	blocks := parseScenario(t, path)
	s := newScenario()
	var b strings.Builder
	for _, bl := range blocks {
		for _, p := range bl.pre {
			if p == "" && (b.Len() == 0 || strings.HasSuffix(b.String(), "\n\n")) {
				continue // blocks are separated by exactly one blank line
			}
			b.WriteString(p + "\n")
		}
		if bl.cmd == "" {
			continue
		}
		got, err := s.run(bl.cmd)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", path, bl.line, bl.cmd, err)
		}
		got = strings.TrimRight(got, "\n")
		if got == "" {
			got = "ok"
		}
		b.WriteString(bl.cmd + "\n----\n" + got + "\n\n")
		if !*rewrite && got != bl.want {
			t.Errorf("%s:%d: %s: output differs (-want +got):\n%s", path, bl.line, bl.cmd, cmp.Diff(bl.want, got))
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(b.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scenario is a simulated cluster the commands act on: the desired objects (as
// git would hold them), the store's pods, nodes and app state, and a logical clock.
type scenario struct {
	now      time.Time
	round    int64
	cfg      Config
	nodes    map[string]*corev1.Node
	deps     map[string]*plannertest.DeploymentBuilder
	bare     map[string]*plannertest.PodBuilder
	observed map[string]*corev1.Pod
	apps     map[string]AppState
	last     *Plan
	jobs     map[string]*batchv1.Job     // Jobs in git
	crons    map[string]*batchv1.CronJob // CronJobs in git
	runs     map[string]*batchv1.Job     // the store's Job runs, by namespace/name
}

func newScenario() *scenario {
	return &scenario{
		now:      time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC),
		nodes:    map[string]*corev1.Node{},
		deps:     map[string]*plannertest.DeploymentBuilder{},
		bare:     map[string]*plannertest.PodBuilder{},
		observed: map[string]*corev1.Pod{},
		apps:     map[string]AppState{},
		jobs:     map[string]*batchv1.Job{},
		crons:    map[string]*batchv1.CronJob{},
		runs:     map[string]*batchv1.Job{},
	}
}

func (s *scenario) input() Input {
	var objs []any
	for _, d := range s.deps {
		objs = append(objs, d.Obj().DeepCopy())
	}
	for _, p := range s.bare {
		objs = append(objs, p.Obj().DeepCopy())
	}
	for _, j := range s.jobs {
		objs = append(objs, j.DeepCopy())
	}
	for _, cj := range s.crons {
		objs = append(objs, cj.DeepCopy())
	}
	in := Input{Desired: plannertest.Desired(objs...), Now: s.now, Seed: s.round, Config: s.cfg, Apps: map[string]AppState{}}
	for _, k := range sortedKeys(s.nodes) {
		in.Nodes = append(in.Nodes, s.nodes[k].DeepCopy())
	}
	for _, k := range sortedKeys(s.observed) {
		in.Observed = append(in.Observed, s.observed[k].DeepCopy())
	}
	for k, v := range s.apps {
		in.Apps[k] = v
	}
	for _, k := range sortedKeys(s.runs) {
		in.Jobs = append(in.Jobs, s.runs[k].DeepCopy())
	}
	return in
}

func args(fields []string) map[string][]string {
	m := map[string][]string{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		m[k] = append(m[k], v)
	}
	return m
}

func (s *scenario) run(line string) (string, error) {
	f := splitQuoted(line)
	cmd, rest := f[0], f[1:]
	if out, ok, err := s.runBatch(cmd, rest); ok {
		return out, err
	}
	switch cmd {
	case "node":
		return s.cmdNode(rest)
	case "apply":
		return s.cmdApply(rest)
	case "delete":
		if len(rest) != 1 {
			return "", fmt.Errorf("usage: delete NAME")
		}
		delete(s.deps, rest[0])
		delete(s.bare, rest[0])
		delete(s.jobs, rest[0])
		delete(s.crons, rest[0])
		return "", nil
	case "plan":
		s.round++
		p := Compute(s.input())
		s.last = &p
		return p.String(), nil
	case "commit":
		if s.last == nil {
			return "", fmt.Errorf("commit without plan")
		}
		s.commit(s.last)
		s.last = nil
		return s.pods(), nil
	case "step":
		// plan + commit, printing only the plan.
		s.round++
		p := Compute(s.input())
		s.commit(&p)
		return p.String(), nil
	case "pods":
		return s.pods(), nil
	case "mark-ready":
		return s.cmdMarkReady(rest)
	case "crash":
		return s.cmdCrash(rest)
	case "fail-node", "recover-node":
		for _, n := range rest {
			node := s.nodes[n]
			if node == nil {
				return "", fmt.Errorf("no node %s", n)
			}
			st := corev1.ConditionFalse
			if cmd == "recover-node" {
				st = corev1.ConditionTrue
			}
			node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, LastTransitionTime: metav1.NewTime(s.now)}}
		}
		return "", nil
	case "taint":
		// taint NODE key=value:Effect
		node := s.nodes[rest[0]]
		if node == nil || len(rest) != 2 {
			return "", fmt.Errorf("usage: taint NODE key=value:Effect")
		}
		k, v, e := parseTaint(rest[1])
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: e, TimeAdded: &metav1.Time{Time: s.now}})
		return "", nil
	case "remove-node":
		for _, n := range rest {
			delete(s.nodes, n)
		}
		return "", nil
	case "tick":
		d, err := time.ParseDuration(rest[0])
		if err != nil {
			return "", err
		}
		s.now = s.now.Add(d)
		return "now " + s.now.Format("15:04:05"), nil
	case "config":
		return s.cmdConfig(rest)
	case "orphan":
		return s.cmdOrphan(rest)
	case "pin":
		return s.cmdPin(rest)
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

func (s *scenario) cmdNode(f []string) (string, error) {
	if len(f) == 0 {
		return "", fmt.Errorf("usage: node NAME cpu=… mem=…")
	}
	b := plannertest.Node(f[0])
	for k, vs := range args(f[1:]) {
		for _, v := range vs {
			switch k {
			case "cpu":
				b.CPU(v)
			case "mem":
				b.Mem(v)
			case "pods":
				b.Pods(v)
			case "label":
				lk, lv, _ := strings.Cut(v, "=")
				b.Label(lk, lv)
			case "taint":
				tk, tv, e := parseTaint(v)
				b.Taint(tk, tv, e)
			case "unschedulable":
				b.Unschedulable()
			default:
				return "", fmt.Errorf("node: unknown argument %q", k)
			}
		}
	}
	s.nodes[f[0]] = b.Obj()
	return "", nil
}

// parseTaint reads key=value:Effect or key:Effect.
func parseTaint(v string) (key, value string, effect corev1.TaintEffect) {
	kv, e, _ := strings.Cut(v, ":")
	key, value, _ = strings.Cut(kv, "=")
	return key, value, corev1.TaintEffect(e)
}

// cmdApply creates or changes a workload, as a commit to git would. Arguments are
// merged onto the workload's existing definition.
func (s *scenario) cmdApply(f []string) (string, error) {
	if len(f) == 0 {
		return "", fmt.Errorf("usage: apply NAME key=value…")
	}
	name := f[0]
	a := args(f[1:])
	if kind := a["kind"]; len(kind) > 0 && kind[0] == "pod" {
		b := s.bare[name]
		if b == nil {
			b = plannertest.Pod(name)
			s.bare[name] = b
		}
		var err error
		b.Spec(func(p *plannertest.PodSpecBuilder) { err = applySpec(p, a) })
		return "", err
	}
	b := s.deps[name]
	if b == nil {
		b = plannertest.Deployment(name)
		s.deps[name] = b
	}
	for k, vs := range a {
		v := vs[0]
		switch k {
		case "replicas":
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", err
			}
			b.Replicas(int32(n))
		case "strategy":
			if v == "Recreate" {
				b.Recreate()
			} else {
				b.MaxSurge("25%")
				b.Obj().Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
			}
		case "surge":
			b.MaxSurge(v)
		case "unavailable":
			b.MaxUnavailable(v)
		case "min-ready":
			n, _ := strconv.Atoi(v)
			b.MinReady(int32(n))
		case "deadline":
			n, _ := strconv.Atoi(v)
			b.ProgressDeadline(int32(n))
		case "paused":
			b.Paused(v != "false")
		case "auto-rollback":
			b.Annotation(api.AnnotationAutoRollback, v)
		case "prune":
			b.Annotation(api.AnnotationPrune, v)
		}
	}
	var err error
	b.Pod(func(p *plannertest.PodSpecBuilder) { err = applySpec(p, a) })
	return "", err
}

func applySpec(p *plannertest.PodSpecBuilder, a map[string][]string) error {
	for k, vs := range a {
		for _, v := range vs {
			switch k {
			case "image":
				p.Image(v)
			case "cpu":
				p.Requests(v, "")
			case "mem":
				p.Requests("", v)
			case "init":
				c, m, _ := strings.Cut(v, "/")
				p.InitRequests(c, m)
			case "priority":
				p.PriorityClass(v)
			case "selector":
				lk, lv, _ := strings.Cut(v, "=")
				p.NodeSelector(lk, lv)
			case "require":
				lk, lv, _ := strings.Cut(v, "=")
				p.RequireNode(lk, strings.Split(lv, ",")...)
			case "prefer":
				kv, w, _ := strings.Cut(v, ":")
				lk, lv, _ := strings.Cut(kv, "=")
				n, _ := strconv.Atoi(w)
				p.PreferNode(lk, lv, int32(n))
			case "toleration":
				tk, tv, e := parseTaint(v)
				p.Toleration(tk, tv, e)
			case "hostport":
				n, _ := strconv.Atoi(v)
				p.HostPort(int32(n))
			case "anti-affinity":
				lk, lv, _ := strings.Cut(v, "=")
				p.AntiAffinity(lk, lv)
			case "spread":
				// spread=DoNotSchedule:1:app=web
				parts := strings.SplitN(v, ":", 3)
				if len(parts) != 3 {
					return fmt.Errorf("spread=WHEN:MAXSKEW:key=value")
				}
				n, _ := strconv.Atoi(parts[1])
				lk, lv, _ := strings.Cut(parts[2], "=")
				p.Spread(int32(n), corev1.UnsatisfiableConstraintAction(parts[0]), lk, lv)
			case "label":
				lk, lv, _ := strings.Cut(v, "=")
				p.Label(lk, lv)
			}
		}
	}
	return nil
}

func (s *scenario) commit(p *Plan) {
	for _, e := range p.Preempt {
		delete(s.observed, podKey(e.Namespace, e.Pod))
	}
	for _, st := range p.Stop {
		delete(s.observed, podKey(st.Namespace, st.Pod))
	}
	for _, pl := range p.Place {
		s.observed[podKey(pl.Pod.Namespace, pl.Pod.Name)] = pl.Pod.DeepCopy()
	}
	for _, d := range p.DeleteJobs {
		delete(s.runs, podKey(d.Namespace, d.Name))
	}
	for _, r := range p.JobRuns {
		if _, ok := s.runs[podKey(r.Job.Namespace, r.Job.Name)]; !ok { // create-if-absent
			s.runs[podKey(r.Job.Namespace, r.Job.Name)] = r.Job.DeepCopy()
		}
	}
	for _, a := range p.Adopt {
		pod := s.observed[podKey(a.Namespace, a.Pod)]
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnotationApp] = a.App
	}
	for k, v := range p.Apps {
		s.apps[k] = v
	}
	for _, k := range p.ForgetApps {
		delete(s.apps, k)
	}
}

func (s *scenario) setReady(pod *corev1.Pod, ready bool) {
	pod.Status.Phase = corev1.PodRunning
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != st {
				pod.Status.Conditions[i] = corev1.PodCondition{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(s.now)}
			}
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(s.now)})
}

// podsOf selects observed pods by "all", an app name, or a pod name.
func (s *scenario) podsOf(sel string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, k := range sortedKeys(s.observed) {
		p := s.observed[k]
		app := p.Annotations[AnnotationApp]
		if sel == "all" || p.Name == sel || strings.HasSuffix(app, "/"+sel) {
			out = append(out, p)
		}
	}
	return out
}

func (s *scenario) cmdMarkReady(f []string) (string, error) {
	if len(f) == 0 {
		f = []string{"all"}
	}
	n := 0
	for _, sel := range f {
		for _, p := range s.podsOf(sel) {
			if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			if node := s.nodes[p.Spec.NodeName]; node == nil || !isReadyNode(node) {
				continue
			}
			s.setReady(p, true)
			n++
		}
	}
	return fmt.Sprintf("%d pods ready", n), nil
}

func isReadyNode(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cmdCrash makes the app's pods of git's current template crash: not ready, with
// the given restart count.
func (s *scenario) cmdCrash(f []string) (string, error) {
	if len(f) < 1 {
		return "", fmt.Errorf("usage: crash APP restarts=N")
	}
	b := s.deps[f[0]]
	if b == nil {
		return "", fmt.Errorf("no deployment %s", f[0])
	}
	restarts := int32(5)
	if r := args(f[1:])["restarts"]; len(r) > 0 {
		n, _ := strconv.Atoi(r[0])
		restarts = int32(n)
	}
	hash := TemplateHash(&b.Obj().Spec.Template)
	n := 0
	for _, p := range s.podsOf(f[0]) {
		if p.Labels[LabelPodTemplateHash] != hash {
			continue
		}
		s.setReady(p, false)
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: restarts}}
		n++
	}
	return fmt.Sprintf("%d pods crashing", n), nil
}

func (s *scenario) cmdConfig(f []string) (string, error) {
	for k, vs := range args(f) {
		v := vs[0]
		switch k {
		case "max-starts":
			n, _ := strconv.Atoi(v)
			s.cfg.MaxStartsPerNodePerRound = n
		case "scoring":
			s.cfg.Scoring = Scoring(v)
		case "crashloop":
			n, _ := strconv.Atoi(v)
			s.cfg.CrashLoopRestarts = int32(n)
		case "grace":
			d, err := time.ParseDuration(v)
			if err != nil {
				return "", err
			}
			s.cfg.NodeLostGrace = d
		default:
			return "", fmt.Errorf("config: unknown key %q", k)
		}
	}
	return "", nil
}

// cmdOrphan adds a pod to the store that no gantry app owns:
// orphan NAME node=n1 label=app=web [cpu=…] [mem=…] [hash=…|hash=current:APP] [priority=…]
func (s *scenario) cmdOrphan(f []string) (string, error) {
	a := args(f[1:])
	pb := plannertest.Pod(f[0])
	pb.Obj().Labels = map[string]string{}
	var err error
	pb.Spec(func(p *plannertest.PodSpecBuilder) { err = applySpec(p, a) })
	if err != nil {
		return "", err
	}
	pod := pb.Obj()
	if n := a["node"]; len(n) > 0 {
		pod.Spec.NodeName = n[0]
	}
	if h := a["hash"]; len(h) > 0 {
		v := h[0]
		if app, ok := strings.CutPrefix(v, "current:"); ok {
			v = TemplateHash(&s.deps[app].Obj().Spec.Template)
			pod.Spec = *s.deps[app].Obj().Spec.Template.Spec.DeepCopy()
			pod.Spec.NodeName = a["node"][0]
		}
		pod.Labels[LabelPodTemplateHash] = v
	}
	if p := a["prio"]; len(p) > 0 {
		n, _ := strconv.Atoi(p[0])
		v := int32(n)
		pod.Spec.Priority = &v
	}
	s.setReady(pod, true)
	s.observed[podKey(pod.Namespace, pod.Name)] = pod
	return "", nil
}

func (s *scenario) cmdPin(f []string) (string, error) {
	key := AppKey(KindDeployment, "default", f[0])
	st, ok := s.apps[key]
	if !ok {
		return "", fmt.Errorf("no state for %s", key)
	}
	n, _ := strconv.Atoi(args(f[1:])["rev"][0])
	for _, r := range st.Revisions {
		if r.Number == int64(n) {
			st.Pin = &Pin{Revision: r.Hash, GitRevision: TemplateHash(&s.deps[f[0]].Obj().Spec.Template)}
			s.apps[key] = st
			return fmt.Sprintf("pinned %s to revision %d", key, n), nil
		}
	}
	return "", fmt.Errorf("no revision %d", n)
}

// pods renders the store: one line per node with its usage, then its pods.
func (s *scenario) pods() string {
	byNode := map[string][]*corev1.Pod{}
	for _, k := range sortedKeys(s.observed) {
		p := s.observed[k]
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	var b strings.Builder
	names := sortedKeys(s.nodes)
	for n := range byNode {
		if _, ok := s.nodes[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		var cpu, mem int64
		for _, p := range byNode[n] {
			c, m := podRequests(&p.Spec)
			cpu += c
			mem += m
		}
		label := n
		if n == "" {
			label = "(unbound)"
		}
		if node := s.nodes[n]; node != nil {
			alloc := node.Status.Allocatable
			state := ""
			if !isReadyNode(node) {
				state = " NotReady"
			}
			fmt.Fprintf(&b, "%s%s cpu %s/%s mem %s/%s:", label, state, formatCPU(cpu), quantity(alloc, corev1.ResourceCPU),
				formatMem(mem), quantity(alloc, corev1.ResourceMemory))
		} else {
			fmt.Fprintf(&b, "%s (not a node):", label)
		}
		for _, p := range byNode[n] {
			fmt.Fprintf(&b, " %s[%s]", p.Name, podState(p))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func quantity(l corev1.ResourceList, n corev1.ResourceName) string {
	if q, ok := l[n]; ok {
		return q.String()
	}
	return resource.NewQuantity(0, resource.DecimalSI).String()
}

func podState(p *corev1.Pod) string {
	st := "pending"
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				st = "ready"
			} else {
				st = "not-ready"
			}
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.RestartCount > 0 {
			st += fmt.Sprintf(" restarts=%d", c.RestartCount)
		}
	}
	if r := p.Annotations[AnnotationRevision]; r != "" {
		return "r" + r + " " + st
	}
	return st
}
