package batch

import "time"

// Back-off between the retries of a failing Job with restartPolicy Never, as in
// Kubernetes: 10 s after the first failure, doubling, at most 6 min. A success
// resets it.
const (
	InitialBackoff = 10 * time.Second
	MaxBackoff     = 6 * time.Minute
)

// Backoff is the delay before the next pod after failures consecutive failures
// (0 for none).
func Backoff(failures int32) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := InitialBackoff
	for i := int32(1); i < failures; i++ {
		d *= 2
		if d >= MaxBackoff {
			return MaxBackoff
		}
	}
	return d
}
