package testenv

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"gantry.io/gantry/e2e/images/imagebuild"
)

// Image is one test image archive.
type Image struct {
	// Ref is the name the archive gives the image on import, e.g. "gantry.test/echo:v1".
	Ref string
	// Archive is the absolute path of the OCI image archive (a tar that containerd's
	// client.Import accepts).
	Archive string
}

// ImageSet holds the test images of e2e/images.
type ImageSet struct {
	// Dir is the directory holding the archives: CacheDir()/images.
	Dir string
	// EchoV1 and EchoV2 are the echo HTTP server answering "version=v1" / "version=v2".
	EchoV1, EchoV2 Image
	// Batch is the batch program (args, env, sleep, exit codes, fail-first-N).
	Batch Image
}

var (
	imagesMu    sync.Mutex
	imagesCache *ImageSet
)

// Images returns the test image archives, building any that are missing or stale
// under CacheDir()/images (see e2e/images/imagebuild: a stamp per archive, a flock so
// parallel test binaries wait for one another). Within one test binary the result is
// computed once. It needs the go command and /bin/busybox (Debian busybox-static):
// without busybox the test is skipped, or fails under CI. A build error fails the test.
func Images(t testing.TB) ImageSet {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if imagesCache != nil {
		return *imagesCache
	}
	_, err := os.Stat("/bin/busybox")
	Require(t, err == nil, "/bin/busybox (Debian package busybox-static; make deps installs it)")
	dir := filepath.Join(CacheDir(), "images")
	results, err := imagebuild.Build(context.Background(), imagebuild.Options{RepoRoot: RepoRoot(), OutDir: dir})
	if err != nil {
		t.Fatalf("build test images: %v", err)
	}
	set := ImageSet{Dir: dir}
	for _, r := range results {
		img := Image{Ref: r.Spec.Ref, Archive: r.Archive}
		switch r.Spec.Ref {
		case imagebuild.EchoV1Ref:
			set.EchoV1 = img
		case imagebuild.EchoV2Ref:
			set.EchoV2 = img
		case imagebuild.BatchV1Ref:
			set.Batch = img
		}
	}
	imagesCache = &set
	return set
}
