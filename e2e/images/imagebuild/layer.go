package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every file and the image's creation time, so that
// the same inputs give byte-identical archives (and digests).
var epoch = time.Unix(0, 0).UTC()

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group  = "root:x:0:\nnobody:x:65534:\n"
)

// rootfsLayer returns the uncompressed tar of the image's only layer: the base
// directories, /etc/passwd and /etc/group, the program at /<Program>, and — when
// busybox is not empty — /bin/busybox with its applet symlinks.
func rootfsLayer(ctx context.Context, spec Spec, program, busybox string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("bin", 0o755) },
		func() error { return dir("etc", 0o755) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return dir("root", 0o700) },
		func() error { return dir("tmp", 0o1777) },
		func() error { return dir("usr", 0o755) },
		func() error { return dir("usr/bin", 0o755) },
		func() error { return dir("usr/local", 0o755) },
		func() error { return dir("usr/local/bin", 0o755) },
		func() error { return dir("var", 0o755) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	bin, err := os.ReadFile(program)
	if err != nil {
		return nil, fmt.Errorf("layer: read program: %w", err)
	}
	if err := file(spec.Program, 0o755, bin); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if busybox != "" {
		if err := addBusybox(ctx, tw, file, busybox); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

func addBusybox(ctx context.Context, tw *tar.Writer, file func(string, int64, []byte) error, busybox string) error {
	data, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("layer: busybox (Debian package busybox-static): %w", err)
	}
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("layer: %s --list: %w", busybox, err)
	}
	have := map[string]bool{}
	for _, a := range strings.Fields(string(out)) {
		have[a] = true
	}
	if err := file("bin/busybox", 0o755, data); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	for _, applet := range busyboxApplets {
		if !have[applet] {
			return fmt.Errorf("layer: %s has no applet %q", busybox, applet)
		}
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: path.Join("bin", applet), Linkname: "busybox", Mode: 0o777, ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("layer: %w", err)
		}
	}
	return nil
}

// newImage wraps the layer into an OCI image (OCI manifest, config and gzip layer
// media types) with the spec's entrypoint, environment, ports and labels.
func newImage(spec Spec, layerTar []byte) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer),
	)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "gantry imagebuild " + spec.Program,
			Comment:   "static " + spec.Program + " binary and busybox",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + spec.Program},
		Env:        []string{DefaultPath},
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":   spec.Program,
			"org.opencontainers.image.version": spec.Version,
		},
	}
	if len(spec.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return img, nil
}
