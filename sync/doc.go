// Package gitsync fetches desired state from Git sources with go-git: clone and fetch,
// polling, push webhooks with signature checks, optional commit-signature verification
// and credentials.
//
// A Syncer follows one Source (URL, ref, path, credentials). Fetch lists the remote's
// refs, and only when the followed ref has moved fetches the new commit (shallow by
// default) and reads the .yaml/.yml files under the source path into a Snapshot. Run
// polls with Fetch, fetches at once on Trigger (webhooks), and backs off on errors.
// WebhookHandler verifies GitHub, GitLab, Gitea/Forgejo and generic HMAC deliveries and
// triggers the Syncers that follow the pushed ref.
//
// What it never does: log or return a credential (every URL in an error is sanitized
// and secret values are scrubbed from error text), log a webhook body, decode
// manifests (that is package manifest's job), or decide what an error means for running
// apps (the caller keeps the last good revision).
//
// See sync/README.md for the fetch pipeline and docs/GITOPS.md for the decisions.
package gitsync
