package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/planner/diff"
)

// runOnlinePlan is `gantry plan --server URL | --online`: head (a directory, a file,
// or --repo DIR --head REF) is sent to the control plane's POST /api/v1/plan, which
// compares it with the revision it applies and places it on the live cluster
// (docs/PLAN.md). The client config gives the credentials (and the server, with
// --online).
func runOnlinePlan(out io.Writer, o planOptions, args []string) (int, error) {
	switch {
	case o.base != "":
		return 1, fmt.Errorf("--base is for an offline plan: online, the base is the revision the cluster runs: %w", api.ErrInvalidArgument)
	case o.nodesFile != "" || len(o.nodes) > 0:
		return 1, fmt.Errorf("--nodes and --node are for an offline plan: online, head is placed on the cluster's own nodes: %w", api.ErrInvalidArgument)
	case o.repo != "" && len(args) > 0:
		return 1, fmt.Errorf("--repo plans --head of the repository; directories %v are not expected as well: %w", args, api.ErrInvalidArgument)
	case o.repo == "" && len(args) != 1:
		return 1, fmt.Errorf("an online plan needs the head revision: HEAD_DIR, or --repo DIR --head REF: %w", api.ErrInvalidArgument)
	}
	var (
		files   map[string][]byte
		label   string
		display func(string) string
		err     error
	)
	if o.repo != "" {
		var hash string
		if files, hash, err = readRevision(o.repo, o.head, o.path); err != nil {
			return 1, err
		}
		label = fmt.Sprintf("%s (%s)", o.head, hash[:8])
		sub := cleanSub(o.path)
		display = func(f string) string {
			if sub == "" {
				return f
			}
			return path.Join(sub, f)
		}
	} else {
		dir := args[0]
		if files, err = readManifestDir(dir); err != nil {
			return 1, err
		}
		label = dir
		single := false
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			single = true
		}
		display = func(f string) string {
			if single {
				return dir
			}
			return filepath.Join(dir, filepath.FromSlash(f))
		}
	}

	cfgPath := o.config
	if cfgPath == "" {
		cfgPath = apiclient.DefaultConfigPath()
	}
	cfg, err := apiclient.LoadConfig(cfgPath)
	if err != nil {
		return 1, fmt.Errorf("an online plan reads its credentials from the client config: %w", err)
	}
	if o.server != "" {
		cfg.Server = o.server
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		return 1, err
	}
	defer c.Close()
	archive, err := controlplane.EncodePlanArchive(files)
	if err != nil {
		return 1, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var report diff.Report
	if err := c.Do(ctx, "POST", api.APIPrefix+"/plan", controlplane.PlanRequest{Head: label, Archive: archive}, &report); err != nil {
		return 1, fmt.Errorf("plan on %s: %w", cfg.Server, err)
	}
	for i := range report.Diagnostics {
		report.Diagnostics[i].Pos.File = display(report.Diagnostics[i].Pos.File)
	}
	for i := range report.Changes.Objects {
		// Deleted objects are named as the server's source has them.
		if oc := &report.Changes.Objects[i]; oc.Action != diff.Deleted {
			oc.Source.File = display(oc.Source.File)
		}
	}
	return writeReport(out, o.format, report)
}

// readManifestDir reads the files manifest.Load would read below dir (.yaml and
// .yml, no dot files or dot folders, at most 64 MiB in all), keyed by their slash
// path relative to dir; dir may name one file. A file that cannot be read is an
// error: an online plan must not silently leave it out.
func readManifestDir(dir string) (map[string][]byte, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("read manifests %s: %w: %w", dir, api.ErrNotFound, err)
		}
		return nil, fmt.Errorf("read manifests %s: %w", dir, err)
	}
	if !fi.IsDir() {
		data, err := os.ReadFile(dir)
		if err != nil {
			return nil, fmt.Errorf("read manifests %s: %w", dir, err)
		}
		return map[string][]byte{filepath.Base(dir): data}, nil
	}
	files := map[string][]byte{}
	total := 0
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read manifests %s: %w", p, err)
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(p))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return fmt.Errorf("read manifests %s: %w", p, err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read manifests: %w", err)
		}
		if total += len(data); total > maxRevisionBytes {
			return fmt.Errorf("manifests in %s exceed %d MiB: %w", dir, maxRevisionBytes>>20, api.ErrInvalidArgument)
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}
