package backoff

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Container state reasons, as Kubernetes reports them in ContainerStatus.
const (
	// Terminated reasons.
	Completed          = "Completed"          // exited 0
	Error              = "Error"              // exited non-zero
	OOMKilled          = "OOMKilled"          // killed by the kernel's OOM killer
	ContainerCannotRun = "ContainerCannotRun" // the runtime could not start the process (no such command, …)
	// Waiting reasons.
	CrashLoopBackOff  = "CrashLoopBackOff"  // waiting out the restart back-off
	ErrImagePull      = "ErrImagePull"      // the last pull failed; the message is the registry's
	ImagePullBackOff  = "ImagePullBackOff"  // waiting out the pull back-off
	ContainerCreating = "ContainerCreating" // being created
	PodInitializing   = "PodInitializing"   // app container waiting for init containers
)

// Policy is the exponential back-off: Initial, doubling on each step, capped at Max;
// a container that ran at least ResetAfter starts again from step 0.
type Policy struct {
	Initial    time.Duration // default 10s
	Max        time.Duration // default 5m
	ResetAfter time.Duration // default 10m
}

// DefaultPolicy is kubelet's: 10 s doubling to 5 min, reset after 10 min running.
func DefaultPolicy() Policy {
	return Policy{Initial: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}
}

// withDefaults fills zero fields from DefaultPolicy.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.Initial <= 0 {
		p.Initial = d.Initial
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = d.ResetAfter
	}
	return p
}

// Next returns the wait before the restart that follows step earlier back-off steps
// (the restart count since the last reset): step 0 → 0 (the first restart is
// immediate, as kubelet's), 1 → Initial, 2 → 2×Initial, … capped at Max.
func (p Policy) Next(step int) time.Duration {
	p = p.withDefaults()
	if step <= 0 {
		return 0
	}
	d := p.Initial
	for i := 1; i < step; i++ {
		d *= 2
		if d >= p.Max {
			return p.Max
		}
	}
	return d
}

// Termination is what the executor knows about a container's last run.
type Termination struct {
	ExitCode   int32
	OOMKilled  bool
	StartError string // non-empty when the runtime could not start the process
	StartedAt  time.Time
	FinishedAt time.Time
}

// Reason returns the terminated reason: ContainerCannotRun, OOMKilled, Completed
// (exit 0) or Error.
func (t Termination) Reason() string {
	switch {
	case t.StartError != "":
		return ContainerCannotRun
	case t.OOMKilled:
		return OOMKilled
	case t.ExitCode == 0:
		return Completed
	default:
		return Error
	}
}

// failed reports whether the run counts as a failure for OnFailure.
func (t Termination) failed() bool {
	return t.StartError != "" || t.OOMKilled || t.ExitCode != 0
}

// Action is what to do with a terminated container.
type Action int

const (
	// DoNotRestart: leave the container terminated (policy Never, or OnFailure after success).
	DoNotRestart Action = iota
	// RestartNow: the back-off (if any) has passed.
	RestartNow
	// Wait: restart at Decision.At; report Waiting with Reason CrashLoopBackOff meanwhile.
	Wait
)

// String returns the action's name.
func (a Action) String() string {
	switch a {
	case RestartNow:
		return "RestartNow"
	case Wait:
		return "Wait"
	default:
		return "DoNotRestart"
	}
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// At is when the restart is due (RestartNow: ≤ now; Wait: > now).
	At time.Time
	// Reason is CrashLoopBackOff when waiting, else the terminated reason.
	Reason string
	// Message is human-readable, like kubelet's "back-off 20s restarting failed container".
	Message string
	// Step is the step count to store once the restart is performed (pass it as step
	// to the next Decide); unchanged for DoNotRestart.
	Step int
}

// Decide is the restart decision for container c that terminated as t under pod
// restartPolicy rp. step is the caller's stored count of restarts since the last
// reset (0 for a container never restarted). Decide is idempotent: calling it again
// with the same inputs and a later now only moves Wait to RestartNow.
//
// Policies: Always restarts whatever the exit; OnFailure restarts unless the exit was
// a success (exit 0, no OOM, started); Never does not restart. An unknown policy is
// treated as Always, the Kubernetes default. A run of at least ResetAfter resets the
// back-off to step 0.
func (p Policy) Decide(rp corev1.RestartPolicy, t Termination, step int, now time.Time) Decision {
	p = p.withDefaults()
	reason := t.Reason()
	switch rp {
	case corev1.RestartPolicyNever:
		return Decision{Action: DoNotRestart, Reason: reason, Message: "restartPolicy Never", Step: step}
	case corev1.RestartPolicyOnFailure:
		if !t.failed() {
			return Decision{Action: DoNotRestart, Reason: reason, Message: "exited 0 under restartPolicy OnFailure", Step: step}
		}
	}
	if !t.StartedAt.IsZero() && !t.FinishedAt.IsZero() && t.FinishedAt.Sub(t.StartedAt) >= p.ResetAfter {
		step = 0
	}
	if step < 0 {
		step = 0
	}
	wait := p.Next(step)
	finished := t.FinishedAt
	if finished.IsZero() {
		finished = now
	}
	at := finished.Add(wait)
	d := Decision{At: at, Step: step + 1, Reason: reason}
	if now.Before(at) {
		d.Action = Wait
		d.Reason = CrashLoopBackOff
		d.Message = fmt.Sprintf("back-off %s restarting failed container", wait)
		return d
	}
	d.Action = RestartNow
	d.Message = fmt.Sprintf("restarting container (%s)", reason)
	return d
}

// EffectivePolicy returns the restart policy that applies to one container: a
// sidecar (init container with restartPolicy Always) is Always; other init containers
// are OnFailure unless the pod's policy is Never; app containers follow the pod
// (default Always).
func EffectivePolicy(pod corev1.RestartPolicy, container *corev1.ContainerRestartPolicy, init bool) corev1.RestartPolicy {
	if container != nil && *container == corev1.ContainerRestartPolicyAlways {
		return corev1.RestartPolicyAlways
	}
	if pod == "" {
		pod = corev1.RestartPolicyAlways
	}
	if init && pod == corev1.RestartPolicyAlways {
		return corev1.RestartPolicyOnFailure
	}
	return pod
}

// Pull is the image-pull decision for a container whose image is not present.
type Pull struct {
	// Attempt is true when a pull may start now.
	Attempt bool
	// At is when the next pull is due.
	At time.Time
	// Reason is ImagePullBackOff while waiting; "" when a pull may start (the caller
	// reports ErrImagePull with the registry's message if it fails).
	Reason  string
	Message string
}

// PullBackoff decides whether to pull image now, given failures consecutive failed
// pulls, the last at lastFailure. The waits are Next(failures): the first retry
// after a failure waits Initial (the step count is failures, so a first pull is
// immediate), doubling to Max. A successful pull resets failures to 0 (the caller's
// state).
func (p Policy) PullBackoff(image string, failures int, lastFailure, now time.Time) Pull {
	if failures <= 0 || lastFailure.IsZero() {
		return Pull{Attempt: true, At: now}
	}
	wait := p.Next(failures)
	at := lastFailure.Add(wait)
	if now.Before(at) {
		return Pull{At: at, Reason: ImagePullBackOff, Message: fmt.Sprintf("Back-off %s pulling image %q", wait, image)}
	}
	return Pull{Attempt: true, At: at}
}
