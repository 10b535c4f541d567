package controlplane_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
)

func tarGz(t *testing.T, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "link.yaml", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestPlanArchive(t *testing.T) {
	files := map[string][]byte{"web.yaml": []byte("kind: Deployment\n"), "sub/db.yml": []byte("kind: Pod\n")}
	archive, err := controlplane.EncodePlanArchive(files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := controlplane.DecodePlanArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(files, got); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	if got, err := controlplane.DecodePlanArchive(tarGz(t, map[string]string{"./a/../b.yaml": "x"})); err != nil || string(got["b.yaml"]) != "x" || len(got) != 1 {
		t.Fatalf("a cleaned path and a skipped symlink: %v %v", got, err)
	}
	for name, archive := range map[string][]byte{
		"not gzip":  []byte("plain text"),
		"climbs":    tarGz(t, map[string]string{"../outside.yaml": "x"}),
		"absolute":  tarGz(t, map[string]string{"/etc/x.yaml": "x"}),
		"truncated": archive[:len(archive)/2],
	} {
		if _, err := controlplane.DecodePlanArchive(archive); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}

// TestPlanWithoutGitSource: a server without a reconcile loop has no applied
// revision to plan against: 412.
func TestPlanWithoutGitSource(t *testing.T) {
	e := startServer(t)
	archive, err := controlplane.EncodePlanArchive(map[string][]byte{"web.yaml": []byte("kind: Pod\n")})
	if err != nil {
		t.Fatal(err)
	}
	err = e.admin(t).Do(context.Background(), "POST", api.APIPrefix+"/plan", controlplane.PlanRequest{Head: "x", Archive: archive}, nil)
	if !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("plan without a git source: %v, want ErrFailedPrecondition", err)
	}
	if err := e.client(t, "").Do(context.Background(), "POST", api.APIPrefix+"/plan", controlplane.PlanRequest{}, nil); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("plan without a token: %v, want ErrUnauthenticated", err)
	}
}
