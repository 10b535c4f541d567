package secrets

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"gantry.io/gantry/api"
)

// UnavailableError says that a secret could not be read now: Vault is unreachable,
// refused the login or the read, or the path or property does not exist. It wraps
// api.ErrUnavailable (errors.Is(err, api.ErrUnavailable) holds), and api.ErrNotFound as
// well when the path, version or property does not exist.
//
// Its text names the store, the Vault path and Vault's reason; it never contains a
// token, a secret ID or a secret value, and Vault URLs lose their query strings.
type UnavailableError struct {
	// Store is "namespace/name" of the SecretStore, or the ClusterSecretStore's name.
	Store string
	// Path is the Vault path that was read ("secret/data/app"), or the login path.
	Path string
	// Reason is Vault's answer or the transport failure, sanitized.
	Reason string

	notFound bool
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("secret store %q: vault path %q unavailable: %s", e.Store, e.Path, e.Reason)
}

// Unwrap returns the error classes: api.ErrUnavailable, and api.ErrNotFound when the
// path, version or property does not exist.
func (e *UnavailableError) Unwrap() []error {
	if e.notFound {
		return []error{api.ErrUnavailable, api.ErrNotFound}
	}
	return []error{api.ErrUnavailable}
}

// unavailable builds an UnavailableError from a Vault client error. The reason is
// rebuilt from the error's parts rather than its full text: vault/api errors embed the
// request URL, and transport errors may embed the whole request line.
func unavailable(store, path string, err error) *UnavailableError {
	return &UnavailableError{Store: store, Path: path, Reason: vaultReason(err)}
}

func notFound(store, path, reason string) *UnavailableError {
	return &UnavailableError{Store: store, Path: path, Reason: reason, notFound: true}
}

// vaultReason turns a Vault client error into a short text without URLs or
// credentials.
func vaultReason(err error) string {
	var rerr *vault.ResponseError
	if errors.As(err, &rerr) {
		msgs := make([]string, 0, len(rerr.Errors))
		for _, m := range rerr.Errors {
			msgs = append(msgs, stripURLs(m))
		}
		if len(msgs) == 0 {
			return fmt.Sprintf("vault answered HTTP %d", rerr.StatusCode)
		}
		return fmt.Sprintf("vault answered HTTP %d: %s", rerr.StatusCode, strings.Join(msgs, "; "))
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var operr *net.OpError
	if errors.As(err, &operr) && operr.Err != nil {
		return fmt.Sprintf("%s: %s", operr.Op, stripURLs(operr.Err.Error()))
	}
	return stripURLs(err.Error())
}

// stripURLs removes the query string and user info of every URL in s.
func stripURLs(s string) string {
	fields := strings.Fields(s)
	changed := false
	for i, f := range fields {
		if !strings.Contains(f, "://") {
			continue
		}
		trimmed := strings.Trim(f, `"',;:()`)
		u, err := url.Parse(trimmed)
		if err != nil {
			fields[i] = "[url]"
			changed = true
			continue
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		fields[i] = strings.Replace(f, trimmed, u.String(), 1)
		changed = true
	}
	if !changed {
		return strings.Join(strings.Fields(s), " ")
	}
	return strings.Join(fields, " ")
}
