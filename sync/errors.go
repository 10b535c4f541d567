package gitsync

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"gantry.io/gantry/api"
)

// UnverifiedError says the head commit of a source is not signed by a trusted key.
// The caller keeps deploying the last good revision and shows the app Stalled with
// Reason; a new commit (or a new keyring) is needed to move on. It matches
// api.ErrFailedPrecondition with errors.Is.
type UnverifiedError struct {
	// Revision is the commit SHA that failed verification.
	Revision string
	// Reason says why, e.g. "commit is not signed", "signed by unknown key 1A2B3C4D5E6F7A8B".
	Reason string
}

func (e *UnverifiedError) Error() string {
	return fmt.Sprintf("commit %s not deployed: %s", e.Revision, e.Reason)
}

// Unwrap classes the error as api.ErrFailedPrecondition.
func (e *UnverifiedError) Unwrap() error { return api.ErrFailedPrecondition }

// sourceError is an error whose text has been scrubbed of credentials. It keeps only
// static sentinel errors in its chain (api classes, go-git transport sentinels,
// context errors), never the original error, whose text could hold a secret.
type sourceError struct {
	msg    string
	causes []error
}

func (e *sourceError) Error() string   { return e.msg }
func (e *sourceError) Unwrap() []error { return e.causes }

// sentinels are the static errors a sourceError may keep in its chain.
var sentinels = []error{
	context.Canceled, context.DeadlineExceeded,
	transport.ErrRepositoryNotFound, transport.ErrEmptyRemoteRepository,
	transport.ErrAuthenticationRequired, transport.ErrAuthorizationFailed,
	transport.ErrInvalidAuthMethod,
	api.ErrNotFound, api.ErrInvalidArgument, api.ErrUnavailable, api.ErrUnauthenticated,
	api.ErrPermissionDenied, api.ErrFailedPrecondition, api.ErrConflict,
}

// wrapErr returns "<sanitized url>: <what>: <scrubbed err>", classed: the api class
// err already carries, or one derived from go-git's transport errors, else
// api.ErrUnavailable (network and server trouble are worth retrying). secrets are
// literal values (passwords, tokens) to blank out of the text.
func wrapErr(rawURL, what string, err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var uv *UnverifiedError
	if errors.As(err, &uv) {
		return err
	}
	var causes []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			causes = append(causes, s)
		}
	}
	class := classOf(err)
	if class != nil && !errors.Is(err, class) {
		causes = append(causes, class)
	}
	msg := fmt.Sprintf("git source %s: %s: %s", SanitizeURL(rawURL), what, scrub(err.Error(), rawURL, secrets...))
	return &sourceError{msg: msg, causes: causes}
}

func classOf(err error) error {
	for _, c := range []error{api.ErrNotFound, api.ErrInvalidArgument, api.ErrUnauthenticated,
		api.ErrPermissionDenied, api.ErrFailedPrecondition, api.ErrUnavailable} {
		if errors.Is(err, c) {
			return c
		}
	}
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrInvalidAuthMethod):
		return api.ErrUnauthenticated
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return api.ErrPermissionDenied
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return api.ErrNotFound
	case errors.Is(err, context.Canceled):
		return nil
	}
	// The SSH client reports authentication failures only as text.
	text := err.Error()
	for _, marker := range []string{"unable to authenticate", "knownhosts:", "host key mismatch", "handshake failed: ssh: no common algorithm for host key"} {
		if strings.Contains(text, marker) {
			return api.ErrUnauthenticated
		}
	}
	return api.ErrUnavailable
}

var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// scrub removes credentials from an error text: the raw source URL is replaced by its
// sanitized form, every URL in the text loses userinfo and query string, and each
// literal secret becomes "***".
func scrub(text, rawURL string, secrets ...string) string {
	if rawURL != "" {
		text = strings.ReplaceAll(text, rawURL, SanitizeURL(rawURL))
	}
	text = urlInText.ReplaceAllStringFunc(text, SanitizeURL)
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}
