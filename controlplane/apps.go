package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/fields"

	"gantry.io/gantry/api"
	"gantry.io/gantry/store"
)

// WithReconciler runs r (the GitOps loop) with the server: Start runs it, Close
// stops it, and the API serves /api/v1/sync, POST /api/v1/webhooks/git (when r has
// a webhook secret) and the rollback endpoint. Without it the server serves apps
// read-only and answers 412 to sync and rollback.
func WithReconciler(r *Reconciler) Option { return func(o *serverOpts) { o.reconciler = r } }

// Reconciler returns the server's reconcile loop, nil if none.
func (s *Server) Reconciler() *Reconciler { return s.opts.reconciler }

func newAppAPI(s *Server) *kindAPI[store.App, *store.App] {
	return &kindAPI[store.App, *store.App]{
		s: s, res: s.st.Apps(), typeName: "App",
		fields: func(a *store.App) fields.Set {
			return fields.Set{"metadata.name": a.Name, "metadata.namespace": a.Namespace, "status.health": string(a.Status.Health)}
		},
		nodeOf:     func(*store.App) string { return "" },
		copyStatus: func(dst, src *store.App) { dst.Status = src.Status },
	}
}

// registerApps mounts the app endpoints (read-only: apps come from git), sync,
// rollback and the git webhook.
//
//	GET  /api/v1/apps, /api/v1/namespaces/{ns}/apps[/{name}]   (watch=true streams)
//	POST /api/v1/namespaces/{ns}/apps/{name}/rollback          {"toRevision":N} | {"unpin":true}
//	GET  /api/v1/sync                                          the git source's status
//	POST /api/v1/sync                                          fetch now (returns the status)
//	POST /api/v1/webhooks/git                                  signed push (gitsync handler)
func (s *Server) registerApps(mux *http.ServeMux) {
	k := newAppAPI(s)
	p := api.APIPrefix
	res := string(store.KindApp)
	mux.Handle("GET "+p+"/"+res, s.route(VerbList, res, false, k.list))
	mux.Handle("GET "+p+"/namespaces/{ns}/"+res, s.route(VerbList, res, false, k.list))
	mux.Handle("GET "+p+"/namespaces/{ns}/"+res+"/{name}", s.route(VerbGet, res, false, s.getApp))
	mux.Handle("POST "+p+"/namespaces/{ns}/"+res+"/{name}/rollback", s.route(VerbUpdate, res, false, s.rollbackApp))
	mux.Handle("GET "+p+"/sync", s.route(VerbGet, "sync", false, s.syncStatus))
	mux.Handle("POST "+p+"/sync", s.route(VerbCreate, "sync", false, s.syncNow))
	if r := s.opts.reconciler; r != nil {
		if h, err := r.WebhookHandler(); err != nil {
			s.opts.logger.Error("git webhook disabled", "err", err)
		} else if h != nil {
			// Webhooks authenticate by their signature, not by a token.
			mux.Handle("POST "+p+"/webhooks/git", h)
		}
	}
}

// getApp accepts the store name ("deployment.web") or the plain name ("web").
func (s *Server) getApp(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := Authorize(id, Request{Verb: VerbGet, Kind: store.KindApp, Name: name}); err != nil {
		return err
	}
	a, err := findApp(r.Context(), s.st, ns, name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newAppAPI(s).typed(a))
}

// RollbackRequest is the body of POST …/apps/{name}/rollback.
type RollbackRequest struct {
	// ToRevision is the revision number to pin; 0 means the one before the
	// current target.
	ToRevision int64 `json:"toRevision,omitempty"`
	// Unpin releases a pin instead.
	Unpin bool `json:"unpin,omitempty"`
}

func (s *Server) rollbackApp(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := Authorize(id, Request{Verb: VerbUpdate, Kind: store.KindApp, Name: name}); err != nil {
		return err
	}
	rec := s.opts.reconciler
	if rec == nil {
		return fmt.Errorf("this server runs no git source (start it with --repo): %w", api.ErrFailedPrecondition)
	}
	var req RollbackRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return fmt.Errorf("rollback request: %v: %w", err, api.ErrInvalidArgument)
	}
	a, err := rec.Rollback(r.Context(), ns, name, req.ToRevision, req.Unpin)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newAppAPI(s).typed(a))
}

func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := Authorize(id, Request{Verb: VerbGet, Kind: store.KindApp, Name: "sync"}); err != nil {
		return err
	}
	rec := s.opts.reconciler
	if rec == nil {
		return fmt.Errorf("this server runs no git source (start it with --repo): %w", api.ErrFailedPrecondition)
	}
	return writeJSON(w, http.StatusOK, rec.Status())
}

func (s *Server) syncNow(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := Authorize(id, Request{Verb: VerbUpdate, Kind: store.KindApp, Name: "sync"}); err != nil {
		return err
	}
	rec := s.opts.reconciler
	if rec == nil {
		return fmt.Errorf("this server runs no git source (start it with --repo): %w", api.ErrFailedPrecondition)
	}
	rec.Sync()
	return writeJSON(w, http.StatusAccepted, rec.Status())
}
