package backoff

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestNext(t *testing.T) {
	def := DefaultPolicy()
	fast := Policy{Initial: 100 * time.Millisecond, Max: time.Second, ResetAfter: 5 * time.Second}
	tests := []struct {
		name string
		p    Policy
		step int
		want time.Duration
	}{
		{"first restart immediate", def, 0, 0},
		{"negative step", def, -3, 0},
		{"second 10s", def, 1, 10 * time.Second},
		{"third 20s", def, 2, 20 * time.Second},
		{"fourth 40s", def, 3, 40 * time.Second},
		{"160s", def, 5, 160 * time.Second},
		{"capped at 5m", def, 6, 5 * time.Minute},
		{"stays capped", def, 1000, 5 * time.Minute},
		{"zero policy uses defaults", Policy{}, 1, 10 * time.Second},
		{"fast 1", fast, 1, 100 * time.Millisecond},
		{"fast 4", fast, 4, 800 * time.Millisecond},
		{"fast capped", fast, 5, time.Second},
		{"max below initial", Policy{Initial: time.Minute, Max: time.Second}, 3, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Next(tc.step); got != tc.want {
				t.Errorf("Next(%d) = %s, want %s", tc.step, got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	p := DefaultPolicy()
	exit := func(code int32, ran time.Duration) Termination {
		return Termination{ExitCode: code, StartedAt: t0.Add(-ran), FinishedAt: t0}
	}
	tests := []struct {
		name string
		rp   corev1.RestartPolicy
		term Termination
		step int
		now  time.Time
		want Decision
	}{
		{"Always, first crash restarts now", corev1.RestartPolicyAlways, exit(1, time.Second), 0, t0,
			Decision{Action: RestartNow, At: t0, Reason: Error, Message: "restarting container (Error)", Step: 1}},
		{"Always, second crash waits 10s", corev1.RestartPolicyAlways, exit(1, time.Second), 1, t0.Add(time.Second),
			Decision{Action: Wait, At: t0.Add(10 * time.Second), Reason: CrashLoopBackOff, Message: "back-off 10s restarting failed container", Step: 2}},
		{"Always, back-off over", corev1.RestartPolicyAlways, exit(1, time.Second), 1, t0.Add(10 * time.Second),
			Decision{Action: RestartNow, At: t0.Add(10 * time.Second), Reason: Error, Message: "restarting container (Error)", Step: 2}},
		{"Always, exit 0 restarts too", corev1.RestartPolicyAlways, exit(0, time.Second), 2, t0,
			Decision{Action: Wait, At: t0.Add(20 * time.Second), Reason: CrashLoopBackOff, Message: "back-off 20s restarting failed container", Step: 3}},
		{"Always, capped", corev1.RestartPolicyAlways, exit(2, time.Second), 9, t0,
			Decision{Action: Wait, At: t0.Add(5 * time.Minute), Reason: CrashLoopBackOff, Message: "back-off 5m0s restarting failed container", Step: 10}},
		{"ran 10m resets", corev1.RestartPolicyAlways, exit(1, 10*time.Minute), 9, t0,
			Decision{Action: RestartNow, At: t0, Reason: Error, Message: "restarting container (Error)", Step: 1}},
		{"ran 9m does not reset", corev1.RestartPolicyAlways, exit(1, 9*time.Minute), 1, t0,
			Decision{Action: Wait, At: t0.Add(10 * time.Second), Reason: CrashLoopBackOff, Message: "back-off 10s restarting failed container", Step: 2}},
		{"default policy is Always", "", exit(0, time.Second), 0, t0,
			Decision{Action: RestartNow, At: t0, Reason: Completed, Message: "restarting container (Completed)", Step: 1}},
		{"OnFailure, exit 0 stays", corev1.RestartPolicyOnFailure, exit(0, time.Second), 3, t0,
			Decision{Action: DoNotRestart, Reason: Completed, Message: "exited 0 under restartPolicy OnFailure", Step: 3}},
		{"OnFailure, exit 1 restarts", corev1.RestartPolicyOnFailure, exit(1, time.Second), 0, t0,
			Decision{Action: RestartNow, At: t0, Reason: Error, Message: "restarting container (Error)", Step: 1}},
		{"OnFailure, OOM restarts", corev1.RestartPolicyOnFailure, Termination{ExitCode: 137, OOMKilled: true, StartedAt: t0, FinishedAt: t0}, 1, t0,
			Decision{Action: Wait, At: t0.Add(10 * time.Second), Reason: CrashLoopBackOff, Message: "back-off 10s restarting failed container", Step: 2}},
		{"OnFailure, cannot run restarts", corev1.RestartPolicyOnFailure, Termination{ExitCode: 128, StartError: "exec: \"nope\": not found", FinishedAt: t0}, 0, t0,
			Decision{Action: RestartNow, At: t0, Reason: ContainerCannotRun, Message: "restarting container (ContainerCannotRun)", Step: 1}},
		{"Never, failure stays", corev1.RestartPolicyNever, exit(1, time.Second), 0, t0,
			Decision{Action: DoNotRestart, Reason: Error, Message: "restartPolicy Never", Step: 0}},
		{"Never, OOM stays", corev1.RestartPolicyNever, Termination{ExitCode: 137, OOMKilled: true}, 0, t0,
			Decision{Action: DoNotRestart, Reason: OOMKilled, Message: "restartPolicy Never", Step: 0}},
		{"no finish time waits from now", corev1.RestartPolicyAlways, Termination{ExitCode: 1}, 1, t0,
			Decision{Action: Wait, At: t0.Add(10 * time.Second), Reason: CrashLoopBackOff, Message: "back-off 10s restarting failed container", Step: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Decide(tc.rp, tc.term, tc.step, tc.now)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Decide (-want +got):\n%s", d)
			}
		})
	}
}

// TestCrashLoop replays a container that crashes after 1 s every time, storing the
// step as the executor would, and checks the waits between restarts double to the cap.
func TestCrashLoop(t *testing.T) {
	p := Policy{Initial: time.Second, Max: 8 * time.Second, ResetAfter: time.Minute}
	now, step := t0, 0
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		start := now
		now = now.Add(time.Second) // runs 1 s, then exits 1
		term := Termination{ExitCode: 1, StartedAt: start, FinishedAt: now}
		d := p.Decide(corev1.RestartPolicyAlways, term, step, now)
		if d.Action == Wait {
			now = d.At // the executor sleeps until At, then asks again
			d = p.Decide(corev1.RestartPolicyAlways, term, step, now)
		}
		if d.Action != RestartNow {
			t.Fatalf("restart %d: %v, want RestartNow", i, d.Action)
		}
		waits = append(waits, now.Sub(term.FinishedAt))
		step = d.Step
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	if d := cmp.Diff(want, waits); d != "" {
		t.Errorf("waits (-want +got):\n%s", d)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		term Termination
		want string
	}{
		{Termination{ExitCode: 0}, Completed},
		{Termination{ExitCode: 1}, Error},
		{Termination{ExitCode: 137, OOMKilled: true}, OOMKilled},
		{Termination{ExitCode: 0, OOMKilled: true}, OOMKilled},
		{Termination{ExitCode: 128, StartError: "no such file"}, ContainerCannotRun},
	}
	for _, tc := range tests {
		if got := tc.term.Reason(); got != tc.want {
			t.Errorf("%+v.Reason() = %q, want %q", tc.term, got, tc.want)
		}
	}
}

func TestEffectivePolicy(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name      string
		pod       corev1.RestartPolicy
		container *corev1.ContainerRestartPolicy
		init      bool
		want      corev1.RestartPolicy
	}{
		{"app follows pod Always", corev1.RestartPolicyAlways, nil, false, corev1.RestartPolicyAlways},
		{"app follows pod Never", corev1.RestartPolicyNever, nil, false, corev1.RestartPolicyNever},
		{"app default Always", "", nil, false, corev1.RestartPolicyAlways},
		{"init under Always is OnFailure", corev1.RestartPolicyAlways, nil, true, corev1.RestartPolicyOnFailure},
		{"init under default is OnFailure", "", nil, true, corev1.RestartPolicyOnFailure},
		{"init under OnFailure", corev1.RestartPolicyOnFailure, nil, true, corev1.RestartPolicyOnFailure},
		{"init under Never", corev1.RestartPolicyNever, nil, true, corev1.RestartPolicyNever},
		{"sidecar always", corev1.RestartPolicyNever, &always, true, corev1.RestartPolicyAlways},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EffectivePolicy(tc.pod, tc.container, tc.init); got != tc.want {
				t.Errorf("EffectivePolicy = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPullBackoff(t *testing.T) {
	p := DefaultPolicy()
	const img = "127.0.0.1:5000/app:1"
	tests := []struct {
		name     string
		failures int
		last     time.Time
		now      time.Time
		want     Pull
	}{
		{"first pull", 0, time.Time{}, t0, Pull{Attempt: true, At: t0}},
		{"right after first failure", 1, t0, t0.Add(time.Second),
			Pull{At: t0.Add(10 * time.Second), Reason: ImagePullBackOff, Message: `Back-off 10s pulling image "127.0.0.1:5000/app:1"`}},
		{"after 10s", 1, t0, t0.Add(10 * time.Second), Pull{Attempt: true, At: t0.Add(10 * time.Second)}},
		{"third failure waits 40s", 3, t0, t0.Add(39 * time.Second),
			Pull{At: t0.Add(40 * time.Second), Reason: ImagePullBackOff, Message: `Back-off 40s pulling image "127.0.0.1:5000/app:1"`}},
		{"capped", 20, t0, t0.Add(time.Minute),
			Pull{At: t0.Add(5 * time.Minute), Reason: ImagePullBackOff, Message: `Back-off 5m0s pulling image "127.0.0.1:5000/app:1"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.PullBackoff(img, tc.failures, tc.last, tc.now)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("PullBackoff (-want +got):\n%s", d)
			}
		})
	}
}
