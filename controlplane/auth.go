package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"gantry.io/gantry/api"
)

// Identity is an authenticated caller.
type Identity struct {
	// Name is the token id for token callers, the node name for agents.
	Name string
	Role api.Role
}

// Verb is what a request does, in Kubernetes' vocabulary plus logs and exec.
type Verb string

// The verbs.
const (
	VerbGet    Verb = "get"
	VerbList   Verb = "list"
	VerbWatch  Verb = "watch"
	VerbCreate Verb = "create"
	VerbUpdate Verb = "update"
	VerbDelete Verb = "delete"
	VerbLogs   Verb = "logs"
	VerbExec   Verb = "exec"
)

// Request describes one API call for authorization.
type Request struct {
	Verb        Verb
	Kind        api.Kind // "" for non-object endpoints (tokens, join, metrics)
	Resource    string   // for non-object endpoints: "tokens", "join", "metrics"
	Name        string
	Subresource string // "status", "log", "exec" or ""
	// FieldNode is the spec.nodeName a list or watch of pods is restricted to by its
	// field selector, "" if none.
	FieldNode string
	// ObjectNode is the node of the object acted on: a node's name, or a pod's
	// spec.nodeName as stored (and as sent, for updates: both must match).
	ObjectNode []string
}

// authenticate finds the caller of r: a verified client certificate of the
// gantry:nodes group (CN = node name), else an Authorization: Bearer token. Returns an
// error wrapping api.ErrUnauthenticated when neither is valid.
func authenticate(ctx context.Context, r *http.Request, tokens *Tokens) (Identity, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		if slices.Contains(leaf.Subject.Organization, api.NodesGroup) && leaf.Subject.CommonName != "" {
			return Identity{Name: leaf.Subject.CommonName, Role: api.RoleNode}, nil
		}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Identity{}, fmt.Errorf("no credentials (a bearer token or a node certificate): %w", api.ErrUnauthenticated)
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return Identity{}, fmt.Errorf("authorization header is not a bearer token: %w", api.ErrUnauthenticated)
	}
	role, id, err := tokens.Verify(ctx, tok)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: id, Role: role}, nil
}

// Authorize decides whether id may perform req. It is pure: everything it needs,
// including the node an object is bound to, is in req. Returns nil or an error
// wrapping api.ErrPermissionDenied.
func Authorize(id Identity, req Request) error {
	deny := func(why string) error {
		what := string(req.Kind)
		if what == "" {
			what = req.Resource
		}
		if req.Name != "" {
			what += " " + req.Name
		}
		return fmt.Errorf("%s %q may not %s %s: %s: %w", id.Role, id.Name, req.Verb, what, why, api.ErrPermissionDenied)
	}
	switch id.Role {
	case api.RoleAdmin:
		return nil
	case api.RoleReadOnly:
		if req.Kind == "" && req.Resource != "metrics" {
			return deny("read-only tokens only read objects")
		}
		switch req.Verb {
		case VerbGet, VerbList, VerbWatch, VerbLogs:
			return nil
		}
		return deny("read-only token")
	case api.RoleJoin:
		if req.Resource == "join" && req.Verb == VerbCreate {
			return nil
		}
		return deny("join tokens may only join")
	case api.RoleNode:
		return authorizeNode(id.Name, req, deny)
	}
	return deny("unknown role")
}

func authorizeNode(node string, req Request, deny func(string) error) error {
	own := func() bool {
		if len(req.ObjectNode) == 0 {
			return false
		}
		for _, n := range req.ObjectNode {
			if n != node {
				return false
			}
		}
		return true
	}
	switch req.Kind {
	case api.KindNode:
		switch req.Verb {
		case VerbGet, VerbCreate, VerbUpdate, VerbWatch:
			if req.Name == node {
				return nil
			}
			return deny("an agent reads and writes only its own node")
		}
		return deny("agents do not " + string(req.Verb) + " nodes")
	case api.KindPod:
		switch req.Verb {
		case VerbList, VerbWatch:
			if req.FieldNode == node {
				return nil
			}
			return deny("an agent lists only its own pods (fieldSelector=spec.nodeName=" + node + ")")
		case VerbGet:
			if own() {
				return nil
			}
			return deny("pod is not bound to this node")
		case VerbUpdate:
			if req.Subresource != "status" {
				return deny("agents write only pod status")
			}
			if own() {
				return nil
			}
			return deny("pod is not bound to this node")
		}
		return deny("agents do not " + string(req.Verb) + " pods")
	case api.KindEvent:
		if req.Verb == VerbCreate {
			return nil
		}
		return deny("agents only create events")
	}
	return deny("agents use only the node, pod and event API")
}
