package probe

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// runExec performs an exec probe through t.Exec: exit code 0 is Success, any other
// exit code is Failure carrying the output, running past the timeout is Failure, and an
// exec that could not start at all is Unknown.
func runExec(ctx context.Context, e *corev1.ExecAction, timeout time.Duration, t Target) (Result, string) {
	if len(e.Command) == 0 {
		return Unknown, "exec: empty command"
	}
	if t.Exec == nil {
		return Unknown, "exec: no exec function for this container"
	}
	code, out, err := t.Exec(ctx, e.Command)
	if timedOut(ctx) {
		return Failure, fmt.Sprintf("command %q timed out after %s", strings.Join(e.Command, " "), timeout)
	}
	if err != nil {
		return Unknown, fmt.Sprintf("exec %q: %v", strings.Join(e.Command, " "), err)
	}
	if code != 0 {
		msg := fmt.Sprintf("command %q exited with %d", strings.Join(e.Command, " "), code)
		if o := strings.TrimSpace(truncate(out)); o != "" {
			msg += ": " + o
		}
		return Failure, msg
	}
	return Success, truncate(out)
}
