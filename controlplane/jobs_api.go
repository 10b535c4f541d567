package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"gantry.io/gantry/api"
	"gantry.io/gantry/store"
)

// KindCronJob names the CronJob endpoints. CronJobs are not stored: the API
// shows git's CronJobs with the status the reconcile loop keeps for them.
const KindCronJob api.Kind = "cronjobs"

func newJobAPI(s *Server) *kindAPI[batchv1.Job, *batchv1.Job] {
	return &kindAPI[batchv1.Job, *batchv1.Job]{
		s: s, res: s.st.Jobs(), typeName: "Job",
		fields: func(j *batchv1.Job) fields.Set {
			return fields.Set{"metadata.name": j.Name, "metadata.namespace": j.Namespace}
		},
		nodeOf:     func(*batchv1.Job) string { return "" },
		copyStatus: func(dst, src *batchv1.Job) { dst.Status = src.Status },
	}
}

// registerJobs mounts the Job and CronJob endpoints. Jobs are read-only (runs
// are made by the reconcile loop, or by running a CronJob now); CronJobs come
// from git.
//
//	GET  /api/v1/jobs, /api/v1/namespaces/{ns}/jobs[/{name}]      (watch=true streams)
//	GET  /api/v1/cronjobs, /api/v1/namespaces/{ns}/cronjobs[/{name}]
//	POST /api/v1/namespaces/{ns}/cronjobs/{name}/jobs              {"name":"N"}: run now (201, the Job)
//
// Without a reconcile loop the CronJob endpoints answer 412 (no git source).
func (s *Server) registerJobs(mux *http.ServeMux) {
	k := newJobAPI(s)
	p := api.APIPrefix
	res := string(store.KindJob)
	mux.Handle("GET "+p+"/"+res, s.route(VerbList, res, false, k.list))
	mux.Handle("GET "+p+"/namespaces/{ns}/"+res, s.route(VerbList, res, false, k.list))
	mux.Handle("GET "+p+"/namespaces/{ns}/"+res+"/{name}", s.route(VerbGet, res, false, s.getJob))
	cj := string(KindCronJob)
	mux.Handle("GET "+p+"/"+cj, s.route(VerbList, cj, false, s.listCronJobs))
	mux.Handle("GET "+p+"/namespaces/{ns}/"+cj, s.route(VerbList, cj, false, s.listCronJobs))
	mux.Handle("GET "+p+"/namespaces/{ns}/"+cj+"/{name}", s.route(VerbGet, cj, false, s.getCronJob))
	mux.Handle("POST "+p+"/namespaces/{ns}/"+cj+"/{name}/jobs", s.route(VerbCreate, res, false, s.runCronJob))
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := Authorize(id, Request{Verb: VerbGet, Kind: store.KindJob, Name: name}); err != nil {
		return err
	}
	j, err := s.st.Jobs().Get(r.Context(), ns, name)
	if err != nil {
		return err
	}
	j.TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}
	return writeJSON(w, http.StatusOK, j)
}

func (s *Server) reconcilerOrErr() (*Reconciler, error) {
	if rec := s.opts.reconciler; rec != nil {
		return rec, nil
	}
	return nil, fmt.Errorf("this server runs no git source (start it with --repo): %w", api.ErrFailedPrecondition)
}

func (s *Server) listCronJobs(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := Authorize(id, Request{Verb: VerbList, Kind: KindCronJob}); err != nil {
		return err
	}
	rec, err := s.reconcilerOrErr()
	if err != nil {
		return err
	}
	items, err := rec.CronJobs(r.Context(), r.PathValue("ns"))
	if err != nil {
		return err
	}
	list := batchv1.CronJobList{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJobList"}, Items: make([]batchv1.CronJob, 0, len(items))}
	for _, cj := range items {
		list.Items = append(list.Items, *cj)
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) getCronJob(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := Authorize(id, Request{Verb: VerbGet, Kind: KindCronJob, Name: name}); err != nil {
		return err
	}
	rec, err := s.reconcilerOrErr()
	if err != nil {
		return err
	}
	cj, err := rec.CronJob(r.Context(), ns, name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cj)
}

// RunCronJobRequest is the body of POST …/cronjobs/{name}/jobs.
type RunCronJobRequest struct {
	// Name is the new Job's name (a DNS label).
	Name string `json:"name"`
}

func (s *Server) runCronJob(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := Authorize(id, Request{Verb: VerbCreate, Kind: store.KindJob, Name: name}); err != nil {
		return err
	}
	rec, err := s.reconcilerOrErr()
	if err != nil {
		return err
	}
	var req RunCronJobRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return fmt.Errorf("run cronjob request: %v: %w", err, api.ErrInvalidArgument)
	}
	j, err := rec.RunCronJob(r.Context(), ns, name, req.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, j)
}
