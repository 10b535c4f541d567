package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/planner/batch"
)

// batchClockSpeed is the test-only fast clock of the batch e2e test: a minute of
// the reconcile loop's clock is 15 s of real time.
const batchClockSpeed = 4

func batchRepoFiles(image string) map[string]string {
	return map[string]string{
		"batch/tick.yaml": fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 30
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: tick
              image: %s
              args: ["tick"]
              resources:
                requests: {cpu: 10m, memory: 16Mi}
`, image),
		"batch/indexed.yaml": fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: indexed
spec:
  completions: 5
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: work
          image: %s
          args: ["--sleep", "2s", "indexed"]
          resources:
            requests: {cpu: 10m, memory: 16Mi}
`, image),
		"batch/failing.yaml": fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: failing
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: fail
          image: %s
          args: ["--exit", "3", "failing"]
          resources:
            requests: {cpu: 10m, memory: 16Mi}
`, image),
	}
}

// TestBatchEndToEnd runs Jobs and CronJobs from git on real containerd through
// `gantry up`, with the test-only fast clock (--test-clock-speed: a CronJob minute
// is 15 s): an Indexed Job (completions 5, parallelism 2) whose pods each see their
// JOB_COMPLETION_INDEX, never more than 2 at once; a Job that always fails
// (backoffLimit 2) ends Failed/BackoffLimitExceeded with exactly 3 pods; a
// `* * * * *` CronJob runs each tick exactly once across a server restart right
// after a tick (no tick twice, none lost); run-now; logs of finished pods; and a
// CronJob removed from git runs no more and keeps the default history.
func TestBatchEndToEnd(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "containerd-shim-runc-v2", "go", "git")
	images := testenv.Images(t)
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "batch")
	repo.Commit(t, batchRepoFiles(images.Batch.Ref), "batch")
	repo.Push(t)

	dir, err := os.MkdirTemp("/tmp", "gbt-")
	if err != nil {
		t.Fatal(err)
	}
	bin := gantryBinary(t)
	data := filepath.Join(dir, "d")
	config := filepath.Join(dir, "config")
	port := freePort(t)
	suffix := strconv.Itoa(os.Getpid() % 10000)
	bridge := "gbt" + suffix
	upArgs := []string{"up", "--data-dir", data, "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--agent-listen", "127.0.0.1:0", "--containerd-address", filepath.Join(dir, "none.sock"),
		"--node-name", "batch-node", "--bridge", bridge, "--service-table", bridge, "--client-config", config,
		"--cluster-cidr-v4", "10.249.0.0/16", "--cluster-cidr-v6", "fd00:10:249::/56",
		"--repo", repo.URL, "--path", "batch", "--poll-interval", "1h", "--resync", "1s",
		"--test-clock-speed", strconv.Itoa(batchClockSpeed), "--test-clock-anchor", strconv.FormatInt(time.Now().Unix(), 10),
		"--import", images.Batch.Archive}
	var current *upRun
	starts := 0
	start := func() *upRun {
		starts++
		cmd := exec.Command(bin, upArgs...)
		log, err := startLogged(cmd, filepath.Join(dir, fmt.Sprintf("up-%d.log", starts)))
		if err != nil {
			t.Fatal(err)
		}
		current = &upRun{cmd: cmd, log: log}
		waitFor(t, "gantry up serving", 90*time.Second, func() error {
			if !strings.Contains(log.String(), "join a node with") {
				return fmt.Errorf("log so far: %s", log.String())
			}
			return nil
		})
		return current
	}
	gantry := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "GANTRY_CONFIG="+config)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		deletePods(t, config)
		time.Sleep(3 * time.Second)
		if current != nil && current.cmd.ProcessState == nil {
			_ = current.cmd.Process.Signal(syscall.SIGTERM)
			_ = current.cmd.Wait()
		}
		removeAllContainersOf(filepath.Join(data, "containerd", "config.toml"), filepath.Join(data, "containerd", "c.sock"), "gantry")
		stopContainerdOf(t, filepath.Join(data, "containerd", "config.toml"))
		_ = exec.Command("ip", "link", "del", bridge).Run()
		_ = exec.Command("nft", "delete", "table", "inet", bridge).Run() // the service table gantry leaves by design
		if t.Failed() && current != nil {
			t.Logf("gantry up log:\n%s", current.log.String())
		}
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	})
	dump := func(extra ...string) string {
		out := ""
		for _, args := range [][]string{{"get", "jobs", "-o", "wide"}, {"get", "pods", "-o", "wide"}, {"get", "nodes"}, {"get", "events"}, extra} {
			if len(args) == 0 {
				continue
			}
			o, _ := gantry(args...)
			out += "$ gantry " + strings.Join(args, " ") + "\n" + o
		}
		return out
	}
	jobs := func() map[string]batchv1.Job {
		out, err := gantry("get", "jobs", "-o", "json")
		if err != nil {
			return nil
		}
		var list batchv1.JobList
		if json.Unmarshal([]byte(out), &list) != nil {
			return nil
		}
		m := map[string]batchv1.Job{}
		for _, j := range list.Items {
			m[j.Name] = j
		}
		return m
	}
	runOf := func(prefix string) (batchv1.Job, bool) {
		for name, j := range jobs() {
			if strings.HasPrefix(name, prefix+"-") && j.Labels[batch.LabelJob] == prefix {
				return j, true
			}
		}
		return batchv1.Job{}, false
	}
	podsOf := func(run string) []corev1.Pod {
		out, err := gantry("get", "pods", "-o", "json", "-l", batch.LabelJobName+"="+run)
		if err != nil {
			t.Fatalf("get pods of %s: %v\n%s", run, err, out)
		}
		var list corev1.PodList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	tickRuns := func() []string {
		var out []string
		for name, j := range jobs() {
			if j.Labels[batch.LabelCronJob] == "tick" && j.Annotations[batch.AnnotationInstantiate] == "" {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	completeTicks := func() int {
		n := 0
		for _, name := range tickRuns() {
			if j := jobs()[name]; jobStatus(&j) == "Complete" {
				n++
			}
		}
		return n
	}

	start()

	// The Indexed Job: 5 completions, 2 at a time, each index once.
	var indexed batchv1.Job
	waitFor(t, "indexed Job Complete", 150*time.Second, func() error {
		j, ok := runOf("indexed")
		if !ok || jobStatus(&j) != "Complete" {
			return fmt.Errorf("run %s: %+v", j.Name, j.Status)
		}
		indexed = j
		return nil
	})
	if indexed.Status.Succeeded != 5 || indexed.Status.Failed != 0 || indexed.Status.CompletedIndexes != "0-4" ||
		indexed.Status.StartTime == nil || indexed.Status.CompletionTime == nil {
		t.Fatalf("indexed status: %+v", indexed.Status)
	}
	ipods := podsOf(indexed.Name)
	seen := map[string]int{}
	type span struct{ from, to time.Time }
	var spans []span
	for _, p := range ipods {
		if p.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("indexed pod %s: phase %s", p.Name, p.Status.Phase)
		}
		seen[p.Labels[batch.LabelCompletionIndex]]++
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.State.Terminated; term != nil {
				spans = append(spans, span{term.StartedAt.Time, term.FinishedAt.Time})
			}
		}
	}
	if len(ipods) != 5 || len(seen) != 5 || seen["0"] != 1 || seen["4"] != 1 {
		t.Fatalf("indexed pods %d, indexes %v: want 5 pods, indexes 0-4 once each", len(ipods), seen)
	}
	if len(spans) != 5 {
		t.Fatalf("%d terminated containers of the indexed Job, want 5", len(spans))
	}
	for _, s := range spans {
		overlap := 0
		for _, o := range spans {
			if !o.from.After(s.from) && o.to.After(s.from) {
				overlap++ // running when s started (s included)
			}
		}
		if overlap > 2 {
			t.Fatalf("%d indexed containers ran at once (parallelism 2): %v", overlap, spans)
		}
	}
	// Logs of the finished pods, one prefix per pod, each with its index.
	logs, err := gantry("logs", "job/"+indexed.Name)
	if err != nil {
		t.Fatalf("logs job/%s: %v\n%s", indexed.Name, err, logs)
	}
	for _, p := range ipods {
		want := fmt.Sprintf("[pod/%s] JOB_COMPLETION_INDEX=%s", p.Name, p.Labels[batch.LabelCompletionIndex])
		if !strings.Contains(logs, want) {
			t.Fatalf("logs job/%s lack %q:\n%s", indexed.Name, want, logs)
		}
	}

	// The failing Job: backoffLimit 2 → 3 pods, Failed with BackoffLimitExceeded.
	var failing batchv1.Job
	waitFor(t, "failing Job Failed", 120*time.Second, func() error {
		j, ok := runOf("failing")
		if !ok || jobStatus(&j) != "Failed" {
			return fmt.Errorf("run %s: %+v", j.Name, j.Status)
		}
		failing = j
		return nil
	})
	reason := ""
	for _, c := range failing.Status.Conditions {
		if c.Type == batchv1.JobFailed {
			reason = c.Reason
		}
	}
	if reason != batch.ReasonBackoffLimitExceeded || failing.Status.Failed != 3 {
		t.Fatalf("failing: reason %q failed %d, want BackoffLimitExceeded and 3: %+v", reason, failing.Status.Failed, failing.Status)
	}
	if out, err := gantry("describe", "job", failing.Name); err != nil || !strings.Contains(out, "BackoffLimitExceeded") || !strings.Contains(out, "0 Active") {
		t.Fatalf("describe job %s: %v\n%s", failing.Name, err, out)
	}

	// Run now, and the same name again.
	if out, err := gantry("create", "job", "tick-now", "--from", "cronjob/tick"); err != nil || !strings.Contains(out, "job.batch/tick-now created") {
		t.Fatalf("create job --from: %v\n%s", err, out)
	}
	if out, err := gantry("create", "job", "tick-now", "--from", "cronjob/tick"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("create job with a taken name: %v\n%s", err, out)
	}
	waitFor(t, "tick-now Complete", 60*time.Second, func() error {
		if j := jobs()["tick-now"]; jobStatus(&j) != "Complete" {
			return fmt.Errorf("tick-now: %+v", j.Status)
		}
		return nil
	})
	if out, err := gantry("logs", "job/tick-now"); err != nil || !strings.Contains(out, "args: tick") {
		t.Fatalf("logs job/tick-now: %v\n%s", err, out)
	}

	// Ticks, then a restart right after a new tick's run was created.
	waitFor(t, "2 ticks complete", 120*time.Second, func() error {
		if n := completeTicks(); n < 2 {
			return fmt.Errorf("%d ticks complete: %v", n, tickRuns())
		}
		return nil
	})
	before := len(tickRuns())
	waitFor(t, "a new tick", 60*time.Second, func() error {
		if n := len(tickRuns()); n <= before {
			return fmt.Errorf("%d tick runs", n)
		}
		return nil
	})
	_ = current.cmd.Process.Signal(syscall.SIGTERM)
	_ = current.cmd.Wait()
	stopped := time.Now()
	start()
	t.Logf("gantry up restarted in %v (a tick is %v)", time.Since(stopped).Round(100*time.Millisecond), time.Minute/batchClockSpeed)
	afterRestart := len(tickRuns())
	// Pods that finished before the restart stay finished, with their logs.
	if pods := podsOf(indexed.Name); len(pods) != 5 {
		t.Fatalf("indexed pods after the restart: %d, want the 5 finished ones\n%s", len(pods), dump())
	}
	if j := jobs()[failing.Name]; j.Status.Failed != 3 || len(podsOf(failing.Name)) != 3 {
		t.Fatalf("failing after the restart: %d failed, %d pods; want 3 and 3 (no pod ran again)", j.Status.Failed, len(podsOf(failing.Name)))
	}
	waitFor(t, "logs of finished pods after the restart", 30*time.Second, func() error {
		out, err := gantry("logs", "job/"+indexed.Name)
		if err != nil || strings.Count(out, "] JOB_COMPLETION_INDEX=") != 5 {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})
	waitFor(t, "2 more ticks complete after the restart", 120*time.Second, func() error {
		if n := completeTicks(); n < afterRestart+2 {
			return fmt.Errorf("%d ticks complete: %v", n, tickRuns())
		}
		return nil
	})

	// Each tick ran once, and none is missing between the first and the last.
	runs := tickRuns()
	var minutes []int64
	for _, name := range runs {
		m, err := strconv.ParseInt(strings.TrimPrefix(name, "tick-"), 10, 64)
		if err != nil {
			t.Fatalf("tick run name %q", name)
		}
		minutes = append(minutes, m)
		if pods := podsOf(name); len(pods) != 1 && jobStatus(ptr(jobs()[name])) == "Complete" {
			t.Fatalf("tick run %s has %d pods, want 1\n%s", name, len(pods), dump("describe", "job", name))
		}
	}
	for i := 1; i < len(minutes); i++ {
		if minutes[i] != minutes[i-1]+1 {
			t.Fatalf("tick runs are not one per minute without a gap: %v", runs)
		}
	}
	t.Logf("tick runs: %v", runs)

	out, err := gantry("get", "jobs")
	if err != nil || !strings.Contains(out, "COMPLETIONS") || !strings.Contains(out, indexed.Name) {
		t.Fatalf("get jobs: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, indexed.Name+" ") && (!strings.Contains(l, "5/5") || !strings.Contains(l, "Complete")) {
			t.Fatalf("get jobs row of %s: %q", indexed.Name, l)
		}
		if strings.HasPrefix(l, failing.Name+" ") && (!strings.Contains(l, "0/1") || !strings.Contains(l, "Failed")) {
			t.Fatalf("get jobs row of %s: %q", failing.Name, l)
		}
	}
	if out, err := gantry("get", "cronjobs"); err != nil || !strings.Contains(out, "tick") || !strings.Contains(out, "* * * * *") || !strings.Contains(out, "NEXT") {
		t.Fatalf("get cronjobs: %v\n%s", err, out)
	}
	if out, err := gantry("describe", "cronjob", "tick"); err != nil || !strings.Contains(out, runs[len(runs)-1]) {
		t.Fatalf("describe cronjob tick: %v\n%s", err, out)
	}

	// The CronJob leaves git: no new runs; history within the default limits (3
	// succeeded; the manual run counts as history too).
	repo.Remove(t, "tick leaves", "batch/tick.yaml")
	repo.Push(t)
	if out, err := gantry("sync"); err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	var kept []string
	waitFor(t, "tick's history pruned to 3", 60*time.Second, func() error {
		kept = nil
		for name, j := range jobs() {
			if j.Labels[batch.LabelCronJob] == "tick" {
				kept = append(kept, name)
			}
		}
		if len(kept) > 3 {
			return fmt.Errorf("%d runs kept: %v", len(kept), kept)
		}
		return nil
	})
	time.Sleep(2 * time.Minute / batchClockSpeed) // two ticks pass
	sort.Strings(kept)
	var now []string
	for name, j := range jobs() {
		if j.Labels[batch.LabelCronJob] == "tick" {
			now = append(now, name)
		}
	}
	sort.Strings(now)
	if strings.Join(now, ",") != strings.Join(kept, ",") || len(kept) != 3 {
		t.Fatalf("after tick left git: runs %v, then %v (want the same 3)", kept, now)
	}
}

func ptr[T any](v T) *T { return &v }
