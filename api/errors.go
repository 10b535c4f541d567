package api

import "errors"

// Error classes. Every layer wraps one of these with context, and callers check them
// with errors.Is:
//
//	fmt.Errorf("pod %q on node %q: %w", name, node, api.ErrNotFound)
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that key exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the input is malformed; retrying it unchanged will fail again.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConflict: a compare-and-swap lost; re-read and retry.
	ErrConflict = errors.New("conflict")
	// ErrFailedPrecondition: the system is not in a state that allows the operation.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnavailable: a dependency (containerd, etcd, Vault, git) cannot be reached now;
	// retrying later may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthenticated: the caller presented no valid credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the caller is known but not allowed to do this.
	ErrPermissionDenied = errors.New("permission denied")
)
