package controlplane

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/diff"
	"gantry.io/gantry/store"
)

// MaxPlanBytes bounds the uncompressed manifests of one plan request, as gitsync
// bounds a snapshot (64 MiB).
const MaxPlanBytes = 64 << 20

// planSeed is the planner seed of a live plan: fixed, so the same cluster state and
// revision give the same report.
const planSeed = 1

// PlanRequest is the body of POST /api/v1/plan.
type PlanRequest struct {
	// Head names the planned revision in the report, e.g. "feature (5e6f7a8b)".
	Head string `json:"head"`
	// Archive is a gzip-compressed tar of the manifest files (EncodePlanArchive),
	// paths relative to the manifest root as the server's git source path sees it.
	Archive []byte `json:"archive"`
}

// EncodePlanArchive packs files (slash-separated paths → content) as the Archive of
// a PlanRequest: a gzip-compressed tar, files in name order.
func EncodePlanArchive(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			return nil, fmt.Errorf("pack %s: %w", n, err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, fmt.Errorf("pack %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack manifests: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("pack manifests: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodePlanArchive unpacks a PlanRequest's Archive: its regular files, by cleaned
// slash path. Entries that are not regular files are skipped. Absolute paths, paths
// that climb out with "..", a broken archive, or more than MaxPlanBytes of content
// are api.ErrInvalidArgument.
func DecodePlanArchive(archive []byte) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("plan archive: not gzip: %v: %w", err, api.ErrInvalidArgument)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	total := int64(0)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("plan archive: %v: %w", err, api.ErrInvalidArgument)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.ReplaceAll(h.Name, `\`, "/"))
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || name == "." {
			return nil, fmt.Errorf("plan archive: path %q is outside the manifest root: %w", h.Name, api.ErrInvalidArgument)
		}
		if total += h.Size; total > MaxPlanBytes {
			return nil, fmt.Errorf("plan archive: manifests exceed %d MiB: %w", MaxPlanBytes>>20, api.ErrInvalidArgument)
		}
		data, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, fmt.Errorf("plan archive: %s: %v: %w", name, err, api.ErrInvalidArgument)
		}
		files[name] = data
	}
	return files, nil
}

// planHandler serves POST /api/v1/plan: the report of what the revision in the
// body would do to this cluster (Reconciler.Plan), as the JSON of a diff.Report.
// Reading apps suffices (a read-only token may plan: CI does). 412 when the server
// runs no git source.
func (s *Server) planHandler(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := Authorize(id, Request{Verb: VerbGet, Kind: store.KindApp, Name: "plan"}); err != nil {
		return err
	}
	rec := s.opts.reconciler
	if rec == nil {
		return fmt.Errorf("this server runs no git source (start it with --repo), so there is no applied revision to plan against: %w", api.ErrFailedPrecondition)
	}
	var req PlanRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return fmt.Errorf("plan request: %v: %w", err, api.ErrInvalidArgument)
	}
	files, err := DecodePlanArchive(req.Archive)
	if err != nil {
		return err
	}
	report, err := rec.Plan(r.Context(), req.Head, files)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, report)
}

// Plan reports what the manifest files of head (paths relative to the source's
// path) would do to the cluster if they were pushed: the field-level diff against
// the applied revision (the last valid one; an empty base before the first), and
// the live placement — planner.Compute on the store's nodes, pods, app states and
// Job runs with head as the desired state, its rollout simulated to the end
// (diff.Simulate): where new pods go, which fit nowhere and why, how many running
// pods restart or stop. Head is loaded with the server's own manifest options (its
// plain-Secret policy applies) and given the config hashes the loop would give it,
// from the secret cache as it is: nothing is resolved from Vault for a plan, and
// no secret value is in the report. Nothing is written. label names head in the
// report.
func (r *Reconciler) Plan(ctx context.Context, label string, files map[string][]byte) (diff.Report, error) {
	good, _ := r.state()
	report := diff.Report{Base: "cluster: nothing applied yet", Head: label}
	var base *manifest.Desired
	if good != nil {
		// Objects[].Typed holds the Deployments as git has them: the loop's
		// config-hash annotation is only on the copies in Deployments.
		base = good.desired
		report.Base = "cluster: applied " + short(good.revision)
	}
	if report.Head == "" {
		report.Head = "(head)"
	}
	head, diags := manifest.LoadFiles(files, r.opts.loadOpt...)
	report.Diagnostics = diags
	if report.Invalid() {
		return report, nil
	}
	report.Changes = diff.Compare(base, head)

	appList, err := r.st.Apps().List(ctx, "", store.ListOptions{})
	if err != nil {
		return diff.Report{}, fmt.Errorf("plan: list apps: %w", err)
	}
	states := map[string]planner.AppState{}
	stored := map[string]*store.App{}
	for _, a := range appList.Items {
		states[a.Key] = a.State
		stored[a.Key] = a
	}
	pods, err := r.st.Pods().List(ctx, "", store.ListOptions{})
	if err != nil {
		return diff.Report{}, fmt.Errorf("plan: list pods: %w", err)
	}
	nodes, err := r.st.Nodes().List(ctx, "", store.ListOptions{})
	if err != nil {
		return diff.Report{}, fmt.Errorf("plan: list nodes: %w", err)
	}
	jobs, err := r.st.Jobs().List(ctx, "", store.ListOptions{})
	if err != nil {
		return diff.Report{}, fmt.Errorf("plan: list jobs: %w", err)
	}
	report.Placement = diff.Simulate(planner.Input{
		Desired: r.planConfigHashes(head, stored), Observed: pods.Items, Nodes: nodes.Items, Apps: states,
		Now: r.opts.now(), Seed: planSeed, Config: r.opts.cfg, Jobs: jobs.Items,
	}, 0)
	return report, nil
}

// planConfigHashes is withConfigHashes without its side effects: the secret cache
// is read, never given head's stores or refreshed (a revision under review must not
// make the server read Vault). An ExternalSecret the cache has no value for keeps
// the config hash of the app's stored target, as in the loop.
func (r *Reconciler) planConfigHashes(d *manifest.Desired, stored map[string]*store.App) *manifest.Desired {
	return annotateConfigHashes(d, SecretHashes(r.opts.secrets, d), func() map[string]*store.App { return stored })
}
