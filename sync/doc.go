// Package gitsync fetches desired state from Git sources with go-git: clone and fetch,
// polling, push webhooks with signature checks, optional commit-signature verification
// and credentials. It never logs a credential: every URL in an error is sanitized.
package gitsync
