package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// requireBusybox fails under CI and skips elsewhere when busybox-static is missing
// (testenv.Require cannot be used here: testenv imports this package).
func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI: /bin/busybox (busybox-static)")
		}
		t.Skip("prerequisite missing: /bin/busybox (busybox-static)")
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", "..", ".."))
}

var (
	sharedOnce    sync.Once
	sharedDir     string
	sharedResults []Result
	sharedErr     error
)

// built builds all images once per test binary into a private directory.
func built(t *testing.T) (string, []Result) {
	t.Helper()
	requireBusybox(t)
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "imagebuild-test-")
		if sharedErr != nil {
			return
		}
		sharedResults, sharedErr = Build(context.Background(), Options{RepoRoot: repoRoot(t), OutDir: sharedDir})
	})
	if sharedErr != nil {
		t.Fatalf("Build: %v", sharedErr)
	}
	return sharedDir, sharedResults
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

func TestBuildWritesValidOCIArchives(t *testing.T) {
	dir, results := built(t)
	if len(results) != 3 {
		t.Fatalf("got %d results, want 3", len(results))
	}
	wantFiles := []string{"echo-v1.tar", "echo-v2.tar", "batch-v1.tar"}
	for i, r := range results {
		if got := filepath.Base(r.Archive); got != wantFiles[i] || filepath.Dir(r.Archive) != dir {
			t.Errorf("archive %d = %s, want %s in %s", i, r.Archive, wantFiles[i], dir)
		}
		if !r.Built {
			t.Errorf("%s: Built = false on a fresh directory", r.Spec.Ref)
		}
		t.Run(r.Spec.File, func(t *testing.T) { checkArchive(t, r.Spec, r.Archive) })
	}
}

func checkArchive(t *testing.T, spec Spec, file string) {
	a, err := Open(file)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if a.Ref != spec.Ref {
		t.Errorf("ref = %q, want %q", a.Ref, spec.Ref)
	}
	wantTag := spec.Ref[strings.LastIndex(spec.Ref, ":")+1:]
	if got := a.Descriptor.Annotations[AnnotationRefName]; got != wantTag {
		t.Errorf("%s = %q, want %q", AnnotationRefName, got, wantTag)
	}
	if err := validate.Image(a.Image); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
	m, err := a.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types = %s / %s, want OCI manifest / config", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("layers = %+v, want one %s", m.Layers, types.OCILayer)
	}
	cf, err := a.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform = %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if diff := cmp.Diff([]string{"/" + spec.Program}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{DefaultPath}, cf.Config.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if cf.Config.WorkingDir != "/" {
		t.Errorf("working dir = %q, want /", cf.Config.WorkingDir)
	}
	var gotPorts []string
	for p := range cf.Config.ExposedPorts {
		gotPorts = append(gotPorts, p)
	}
	if diff := cmp.Diff(spec.ExposedPorts, gotPorts); diff != "" {
		t.Errorf("exposed ports (-want +got):\n%s", diff)
	}

	files := layerFiles(t, a)
	prog, ok := files[spec.Program]
	if !ok || prog.Typeflag != tar.TypeReg || prog.Mode&0o111 == 0 || prog.Size == 0 {
		t.Errorf("/%s = %+v, want an executable regular file", spec.Program, prog)
	}
	if bb, ok := files["bin/busybox"]; !ok || bb.Typeflag != tar.TypeReg || bb.Mode&0o111 == 0 {
		t.Errorf("/bin/busybox = %+v, want an executable regular file", bb)
	}
	if sh, ok := files["bin/sh"]; !ok || sh.Typeflag != tar.TypeSymlink || sh.Linkname != "busybox" {
		t.Errorf("/bin/sh = %+v, want a symlink to busybox", sh)
	}
	if tmp, ok := files["tmp/"]; !ok || tmp.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp = %+v, want a world-writable sticky directory", tmp)
	}
}

// layerFiles returns the headers of the image's layer by name.
func layerFiles(t *testing.T, a *Archive) map[string]*tar.Header {
	t.Helper()
	layers, err := a.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		files[hdr.Name] = hdr
	}
}

func TestEchoVersionsDiffer(t *testing.T) {
	_, results := built(t)
	digests := map[string]string{}
	for _, r := range results {
		a, err := Open(r.Archive)
		if err != nil {
			t.Fatal(err)
		}
		d, err := a.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := digests[d.String()]; dup {
			t.Errorf("%s and %s have the same digest %s", r.Spec.Ref, other, d)
		}
		digests[d.String()] = r.Spec.Ref
		// The version string is linked into the binary.
		files := layerContents(t, a, r.Spec.Program)
		if !bytes.Contains(files, []byte(r.Spec.Version)) && r.Spec.Program == "echo" {
			t.Errorf("%s: binary does not contain version %q", r.Spec.Ref, r.Spec.Version)
		}
	}
}

func layerContents(t *testing.T, a *Archive, name string) []byte {
	t.Helper()
	layers, err := a.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not found in layer: %v", name, err)
		}
		if hdr.Name == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// TestContainerdImportNamesImage feeds an archive to containerd's own importer (the
// code behind client.Import) with a local content store, and checks that the index it
// returns names the image after the reference and points at the archive's manifest.
func TestContainerdImportNamesImage(t *testing.T) {
	_, results := built(t)
	r := results[0]
	a, err := Open(r.Archive)
	if err != nil {
		t.Fatal(err)
	}
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "gantry-test")
	f, err := os.Open(r.Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	indexDesc, err := archive.ImportIndex(ctx, store, f)
	if err != nil {
		t.Fatalf("ImportIndex: %v", err)
	}
	raw, err := content.ReadBlob(ctx, store, indexDesc)
	if err != nil {
		t.Fatal(err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index lists %d manifests, want 1", len(index.Manifests))
	}
	m := index.Manifests[0]
	if got := m.Annotations[images.AnnotationImageName]; got != r.Spec.Ref {
		t.Errorf("image name annotation = %q, want %q", got, r.Spec.Ref)
	}
	if m.Digest.String() != a.Descriptor.Digest.String() {
		t.Errorf("imported manifest %s, archive manifest %s", m.Digest, a.Descriptor.Digest)
	}
	// Every blob the manifest references was ingested.
	children, err := images.ChildrenHandler(store)(ctx, m)
	if err != nil {
		t.Fatalf("manifest children: %v", err)
	}
	if len(children) != 2 {
		t.Fatalf("manifest has %d children, want config + 1 layer", len(children))
	}
	for _, c := range children {
		if _, err := store.Info(ctx, c.Digest); err != nil {
			t.Errorf("blob %s not imported: %v", c.Digest, err)
		}
	}
}

func TestBuildSkipsUpToDateAndIsReproducible(t *testing.T) {
	requireBusybox(t)
	dir := t.TempDir()
	opts := Options{RepoRoot: repoRoot(t), OutDir: dir, Specs: Specs()[2:]} // batch only: quick
	first, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	before := digestOf(t, first[0].Archive)
	info, err := os.Stat(first[0].Archive)
	if err != nil {
		t.Fatal(err)
	}

	again, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Built {
		t.Errorf("second Build rebuilt an up-to-date archive")
	}
	if info2, err := os.Stat(again[0].Archive); err != nil || !info2.ModTime().Equal(info.ModTime()) {
		t.Errorf("archive was rewritten (err %v)", err)
	}

	// A stale stamp (as after a source change) forces a rebuild; the same inputs
	// give the same bytes, so the digest does not move.
	if err := os.WriteFile(first[0].Archive+".stamp", []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rebuilt[0].Built {
		t.Errorf("Build with a stale stamp did not rebuild")
	}
	if after := digestOf(t, rebuilt[0].Archive); after != before {
		t.Errorf("rebuild changed the manifest digest: %s -> %s", before, after)
	}

	// A missing archive is rebuilt even when its stamp is current.
	if err := os.Remove(first[0].Archive); err != nil {
		t.Fatal(err)
	}
	restored, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !restored[0].Built {
		t.Errorf("Build did not rebuild a deleted archive")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".build-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary build directories left behind: %v", leftovers)
	}
}

func digestOf(t *testing.T, file string) string {
	t.Helper()
	a, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	return a.Descriptor.Digest.String()
}

// TestBuildWaitsForLock holds the build lock and checks that Build does not finish
// until it is released.
func TestBuildWaitsForLock(t *testing.T) {
	requireBusybox(t)
	_, results := built(t)
	dir := filepath.Dir(results[0].Archive)
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Build(context.Background(), Options{RepoRoot: repoRoot(t), OutDir: dir})
		done <- err
	}()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Build returned (err %v) while another builder held the lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("Build after unlock: %v", err)
	}
}

func TestOpenRejectsBadArchives(t *testing.T) {
	_, results := built(t)
	good, err := os.ReadFile(results[2].Archive)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		archive func(t *testing.T) []byte
		want    string
	}{
		{"not a tar", func(*testing.T) []byte { return []byte("hello") }, "archive"},
		{"docker archive without oci-layout", func(t *testing.T) []byte {
			return rewrite(t, good, func(name string, data []byte) ([]byte, bool) { return data, name != "oci-layout" })
		}, "not an OCI image layout"},
		{"corrupt blob", func(t *testing.T) []byte {
			return rewrite(t, good, func(name string, data []byte) ([]byte, bool) {
				if strings.HasPrefix(name, "blobs/sha256/") && len(data) > 1000 {
					data = append([]byte(nil), data...)
					data[len(data)/2] ^= 0xff
				}
				return data, true
			})
		}, "does not match its digest"},
		{"missing layer", func(t *testing.T) []byte {
			return rewrite(t, good, func(name string, data []byte) ([]byte, bool) {
				return data, !(strings.HasPrefix(name, "blobs/sha256/") && len(data) > 1000)
			})
		}, "layer sha256:"},
		{"empty index", func(t *testing.T) []byte {
			return rewrite(t, good, func(name string, data []byte) ([]byte, bool) {
				if name == "index.json" {
					return []byte(`{"schemaVersion":2,"manifests":[]}`), true
				}
				return data, true
			})
		}, "lists no manifest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(file, tc.archive(t), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// rewrite copies a tar, passing each regular file through edit (false drops it).
func rewrite(t *testing.T, archive []byte, edit func(name string, data []byte) ([]byte, bool)) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			var keep bool
			if data, keep = edit(hdr.Name, data); !keep {
				continue
			}
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestLayerIsGzip guards the media type: the blob really is gzip.
func TestLayerIsGzip(t *testing.T) {
	_, results := built(t)
	a, err := Open(results[0].Archive)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := a.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := gzip.NewReader(rc); err != nil {
		t.Fatalf("layer blob is not gzip: %v", err)
	}
}
