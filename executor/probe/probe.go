package probe

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Result is the outcome of one probe attempt.
type Result int

const (
	// Unknown means the probe could not be run (bad port name, exec could not start,
	// no handler). A Worker does not count it towards either threshold.
	Unknown Result = iota
	// Success means the container answered as healthy.
	Success
	// Failure means the container answered, or failed to answer in time, as unhealthy.
	Failure
)

// String returns "success", "failure" or "unknown".
func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	default:
		return "unknown"
	}
}

// Kind is which of a container's three probes a Worker runs.
type Kind int

const (
	// Startup gates the other two probes until it first succeeds; failing it restarts
	// the container.
	Startup Kind = iota
	// Liveness failing restarts the container.
	Liveness
	// Readiness drives the container's (and the pod's) Ready condition.
	Readiness
)

// String returns "startup", "liveness" or "readiness".
func (k Kind) String() string {
	switch k {
	case Startup:
		return "startup"
	case Liveness:
		return "liveness"
	case Readiness:
		return "readiness"
	default:
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// ExecFunc runs cmd inside the container and returns its exit code and combined
// output. err is for "could not run at all" (no such task, exec refused); a command
// that ran and exited non-zero returns its exit code with a nil error. It must return
// when ctx is done.
type ExecFunc func(ctx context.Context, cmd []string) (exitCode int, output []byte, err error)

// Target is the container a probe is aimed at.
type Target struct {
	// IP is the pod's IP (IPv4 preferred by the caller). httpGet with host "" and
	// tcpSocket with host "" dial it; grpc always dials it.
	IP net.IP
	// Ports maps container port names to numbers, for probes that name their port.
	Ports map[string]int32
	// Exec runs exec probes; nil makes every exec probe Unknown.
	Exec ExecFunc
}

// DefaultTimeout is the per-attempt timeout when a probe sets timeoutSeconds ≤ 0.
const DefaultTimeout = time.Second

// maxOutput bounds how much of an HTTP body or exec output becomes a message.
const maxOutput = 10 * 1024

// Run makes one attempt of handler p against t, bounded by timeout (DefaultTimeout if
// ≤ 0) and by ctx. The message says why it failed, in kubelet's words where kubelet
// has them ("HTTP probe failed with statuscode: 503"), or carries the body/output on
// success. Run never panics on a malformed handler: it returns Unknown with a message.
func Run(ctx context.Context, p *corev1.ProbeHandler, timeout time.Duration, t Target) (Result, string) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if p == nil {
		return Unknown, "probe has no handler"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		return runExec(ctx, p.Exec, timeout, t)
	case p.HTTPGet != nil:
		return runHTTP(ctx, p.HTTPGet, timeout, t)
	case p.TCPSocket != nil:
		return runTCP(ctx, p.TCPSocket, timeout, t)
	case p.GRPC != nil:
		return runGRPC(ctx, p.GRPC, timeout, t)
	default:
		return Unknown, "probe has no handler (exec, httpGet, tcpSocket or grpc)"
	}
}

// resolvePort turns a port number or container port name into a number in 1..65535.
func resolvePort(port intstr.IntOrString, t Target) (int, error) {
	var n int
	switch port.Type {
	case intstr.String:
		if v, ok := t.Ports[port.StrVal]; ok {
			n = int(v)
		} else if v, err := strconv.Atoi(port.StrVal); err == nil {
			n = v
		} else {
			return 0, fmt.Errorf("port %q is not a container port name", port.StrVal)
		}
	default:
		n = int(port.IntVal)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return n, nil
}

// hostOr returns host, or the target's IP when host is empty.
func hostOr(host string, t Target) (string, error) {
	if host != "" {
		return host, nil
	}
	if t.IP == nil {
		return "", fmt.Errorf("pod has no IP yet")
	}
	return t.IP.String(), nil
}

// timedOut reports whether ctx ended by its deadline.
func timedOut(ctx context.Context) bool {
	return ctx.Err() == context.DeadlineExceeded
}

func truncate(b []byte) string {
	if len(b) > maxOutput {
		b = b[:maxOutput]
	}
	return string(b)
}
