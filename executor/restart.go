package executor

import (
	"errors"
	"strings"

	"gantry.io/gantry/executor/backoff"
)

// Container state reasons, as Kubernetes shows them.
// They are package backoff's, repeated here so callers need one import.
const (
	ReasonCompleted          = backoff.Completed
	ReasonError              = backoff.Error
	ReasonOOMKilled          = backoff.OOMKilled
	ReasonContainerCannotRun = backoff.ContainerCannotRun
	ReasonCrashLoopBackOff   = backoff.CrashLoopBackOff
	ReasonErrImagePull       = backoff.ErrImagePull
	ReasonImagePullBackOff   = backoff.ImagePullBackOff
	ReasonContainerCreating  = backoff.ContainerCreating
	ReasonPodInitializing    = backoff.PodInitializing
)

// registryMessage strips what must not reach a status or a log from a pull error:
// URL query strings (tokens) and user info.
func registryMessage(err error) string {
	if errors.Is(err, errPullNever) {
		return err.Error()
	}
	msg := err.Error()
	var b strings.Builder
	for _, f := range strings.Fields(msg) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if strings.Contains(f, "://") {
			if i := strings.IndexByte(f, '?'); i >= 0 {
				f = f[:i] + `"`
			}
			if at := strings.IndexByte(f, '@'); at >= 0 {
				if s := strings.Index(f, "://"); s >= 0 && s < at {
					f = f[:s+3] + f[at+1:]
				}
			}
		}
		b.WriteString(f)
	}
	return b.String()
}
