package imagebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
)

// builderVersion is part of every stamp: bump it when the archive format changes in a
// way the hashed sources do not show.
const builderVersion = "imagebuild/1"

// Options configure Build. Zero values take the documented defaults.
type Options struct {
	// RepoRoot is the repository's top directory (holding e2e/images). Required.
	RepoRoot string
	// OutDir receives File.tar and File.tar.stamp for each Spec. Required; created.
	OutDir string
	// Specs are the images to build. Default: Specs().
	Specs []Spec
	// Busybox is the static busybox binary copied into images. Default: /bin/busybox.
	Busybox string
	// Go is the go command. Default: "go" from PATH.
	Go string
	// Log receives one line per image ("built …" or "up to date …"). Default: discarded.
	Log io.Writer
}

// Result reports one image of a Build.
type Result struct {
	Spec Spec
	// Archive is the absolute path of the OCI archive.
	Archive string
	// Built is false when the archive was already up to date and left alone.
	Built bool
}

// Build makes sure an up-to-date archive exists in OutDir for every spec and returns
// them in spec order. An archive is up to date when its stamp file holds the hash of
// all inputs (program sources, this package's sources, the Go version, busybox, the
// spec); otherwise it is rebuilt and replaced atomically. Build holds an exclusive
// flock on OutDir/.lock for its whole run, so concurrent builders (parallel test
// binaries, `make images`) wait for each other instead of racing.
func Build(ctx context.Context, opts Options) ([]Result, error) {
	if opts.RepoRoot == "" || opts.OutDir == "" {
		return nil, errors.New("imagebuild: RepoRoot and OutDir are required")
	}
	if opts.Specs == nil {
		opts.Specs = Specs()
	}
	if opts.Busybox == "" {
		opts.Busybox = "/bin/busybox"
	}
	if opts.Go == "" {
		opts.Go = "go"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	outDir, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: out dir: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("imagebuild: create out dir: %w", err)
	}
	unlock, err := lock(filepath.Join(outDir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	goVersion, err := goEnv(ctx, opts.Go, "GOVERSION")
	if err != nil {
		return nil, err
	}
	results := make([]Result, 0, len(opts.Specs))
	for _, spec := range opts.Specs {
		archive := filepath.Join(outDir, spec.File+".tar")
		key, err := inputHash(opts, spec, goVersion)
		if err != nil {
			return nil, fmt.Errorf("imagebuild: %s: %w", spec.Ref, err)
		}
		stamp := archive + ".stamp"
		if upToDate(archive, stamp, key) {
			fmt.Fprintf(opts.Log, "up to date %s (%s)\n", spec.Ref, archive)
			results = append(results, Result{Spec: spec, Archive: archive})
			continue
		}
		if err := buildOne(ctx, opts, spec, archive); err != nil {
			return nil, fmt.Errorf("imagebuild: %s: %w", spec.Ref, err)
		}
		if err := os.WriteFile(stamp, []byte(key+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("imagebuild: %s: write stamp: %w", spec.Ref, err)
		}
		fmt.Fprintf(opts.Log, "built %s (%s)\n", spec.Ref, archive)
		results = append(results, Result{Spec: spec, Archive: archive, Built: true})
	}
	return results, nil
}

func buildOne(ctx context.Context, opts Options, spec Spec, archive string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(archive), ".build-"+spec.File+"-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, spec.Program)
	if err := BuildBinary(ctx, opts.Go, filepath.Join(opts.RepoRoot, "e2e", "images", spec.Program), spec.Version, bin); err != nil {
		return err
	}
	busybox := ""
	if spec.Busybox {
		busybox = opts.Busybox
	}
	layer, err := rootfsLayer(ctx, spec, bin, busybox)
	if err != nil {
		return err
	}
	img, err := newImage(spec, layer)
	if err != nil {
		return err
	}
	part := filepath.Join(tmp, "image.tar")
	if err := writeArchive(part, spec.Ref, img); err != nil {
		return err
	}
	if err := os.Rename(part, archive); err != nil {
		return fmt.Errorf("install archive: %w", err)
	}
	return nil
}

// BuildBinary compiles the main package in srcDir into a static linux/amd64 binary at
// out (CGO_ENABLED=0, -trimpath, stripped), with main.version set to version unless it
// is empty. The package must use the standard library only: it is built as its own
// module in a temporary directory, offline (GOTOOLCHAIN=local, GOPROXY=off), so the
// repository's go.mod does not affect it. goCmd defaults to "go".
func BuildBinary(ctx context.Context, goCmd, srcDir, version, out string) error {
	if goCmd == "" {
		goCmd = "go"
	}
	files, err := sourceFiles(srcDir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no Go sources in %s", srcDir)
	}
	mod, err := os.MkdirTemp("", "gantry-imagebuild-")
	if err != nil {
		return fmt.Errorf("temp module: %w", err)
	}
	defer os.RemoveAll(mod)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read source: %w", err)
		}
		if err := os.WriteFile(filepath.Join(mod, filepath.Base(f)), data, 0o644); err != nil {
			return fmt.Errorf("copy source: %w", err)
		}
	}
	gomod := "module gantry.test/" + filepath.Base(srcDir) + "\n\ngo 1.22\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		return fmt.Errorf("write go.mod: %w", err)
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X main.version=" + version
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, ".")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64",
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off",
	)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", srcDir, err, output)
	}
	return nil
}

// sourceFiles lists the non-test .go files of dir, sorted.
func sourceFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read sources: %w", err)
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			files = append(files, filepath.Join(dir, n))
		}
	}
	sort.Strings(files)
	return files, nil
}

// inputHash hashes everything an archive depends on.
func inputHash(opts Options, spec Spec, goVersion string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s/%s\n%#v\n", builderVersion, goVersion, runtime.GOOS, runtime.GOARCH, spec)
	progFiles, err := sourceFiles(filepath.Join(opts.RepoRoot, "e2e", "images", spec.Program))
	if err != nil {
		return "", err
	}
	selfFiles, err := sourceFiles(filepath.Join(opts.RepoRoot, "e2e", "images", "imagebuild"))
	if err != nil {
		return "", err
	}
	files := append(progFiles, selfFiles...)
	if spec.Busybox {
		files = append(files, opts.Busybox)
	}
	for _, f := range files {
		if err := hashFile(h, f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hash input: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(h, "file %s\n", filepath.Base(path))
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash input %s: %w", path, err)
	}
	return nil
}

func upToDate(archive, stamp, key string) bool {
	if _, err := os.Stat(archive); err != nil {
		return false
	}
	data, err := os.ReadFile(stamp)
	return err == nil && strings.TrimSpace(string(data)) == key
}

func goEnv(ctx context.Context, goCmd, name string) (string, error) {
	out, err := exec.CommandContext(ctx, goCmd, "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("imagebuild: go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// lock takes an exclusive flock on path, waiting for other holders.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("imagebuild: flock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
