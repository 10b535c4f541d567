package testenv

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"gantry.io/gantry/e2e/images/imagebuild"
)

func pullDescriptor(t *testing.T, ref string, auth authn.Authenticator) (*remote.Descriptor, error) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("reference %q: %v", ref, err)
	}
	return remote.Get(r, remote.WithAuth(auth))
}

func archiveDigest(t *testing.T, archive string) string {
	t.Helper()
	a, err := imagebuild.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	return a.Descriptor.Digest.String()
}

func TestRegistryPushAndPull(t *testing.T) {
	Integration(t, "docker-registry")
	imgs := Images(t)
	reg := StartRegistry(t)
	if !strings.HasPrefix(reg.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %q, want 127.0.0.1:PORT", reg.Addr())
	}

	for _, tc := range []struct {
		img     Image
		repoTag string
	}{
		{imgs.EchoV1, "echo:v1"},
		{imgs.EchoV2, "echo:v2"},
		{imgs.Batch, "jobs/batch:v1"},
	} {
		ref := reg.Push(t, tc.img.Archive, tc.repoTag)
		if ref != reg.Addr()+"/"+tc.repoTag {
			t.Errorf("Push returned %q, want %s/%s", ref, reg.Addr(), tc.repoTag)
		}
		desc, err := pullDescriptor(t, ref, authn.Anonymous)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if want := archiveDigest(t, tc.img.Archive); desc.Digest.String() != want {
			t.Errorf("%s: registry digest %s, archive digest %s", ref, desc.Digest, want)
		}
		img, err := desc.Image()
		if err != nil {
			t.Fatalf("%s: image: %v", ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("%s: config: %v", ref, err)
		}
		if cf.Config.Labels["org.opencontainers.image.version"] == "" {
			t.Errorf("%s: pulled config lacks the version label", ref)
		}
		// Pull a layer blob back, not just the manifest.
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: layers %d, err %v", ref, len(layers), err)
		}
		if _, err := layers[0].Size(); err != nil {
			t.Errorf("%s: layer: %v", ref, err)
		}
	}

	v1, err := pullDescriptor(t, reg.Ref("echo:v1"), authn.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := pullDescriptor(t, reg.Ref("echo:v2"), authn.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Digest == v2.Digest {
		t.Errorf("echo:v1 and echo:v2 have the same digest %s", v1.Digest)
	}
	if _, err := pullDescriptor(t, reg.Ref("echo:v3"), authn.Anonymous); !isStatus(err, http.StatusNotFound) {
		t.Errorf("pull of a tag never pushed: err %v, want 404", err)
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	Integration(t, "docker-registry")
	imgs := Images(t)
	reg := StartRegistry(t, WithBasicAuth("gantry", "s3cret"))
	if u, p := reg.Credentials(); u != "gantry" || p != "s3cret" {
		t.Fatalf("Credentials = %q, %q", u, p)
	}
	ref := reg.Push(t, imgs.EchoV1.Archive, "private/echo:v1")

	if _, err := pullDescriptor(t, ref, authn.Anonymous); !isStatus(err, http.StatusUnauthorized) {
		t.Errorf("anonymous pull: err %v, want 401", err)
	}
	if _, err := pullDescriptor(t, ref, &authn.Basic{Username: "gantry", Password: "wrong"}); !isStatus(err, http.StatusUnauthorized) {
		t.Errorf("pull with a wrong password: err %v, want 401", err)
	}
	desc, err := pullDescriptor(t, ref, &authn.Basic{Username: "gantry", Password: "s3cret"})
	if err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	if want := archiveDigest(t, imgs.EchoV1.Archive); desc.Digest.String() != want {
		t.Errorf("registry digest %s, archive digest %s", desc.Digest, want)
	}

	// An unauthenticated GET /v2/ is refused with 401 too.
	resp, err := http.Get("http://" + reg.Addr() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ without credentials = %d, want 401", resp.StatusCode)
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	Integration(t, "docker-registry")
	imgs := Images(t)
	a := StartRegistry(t)
	b := StartRegistry(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two registries on one address %s", a.Addr())
	}
	a.Push(t, imgs.Batch.Archive, "batch:v1")
	if _, err := pullDescriptor(t, b.Ref("batch:v1"), authn.Anonymous); !isStatus(err, http.StatusNotFound) {
		t.Errorf("image pushed to one registry is visible in the other: err %v", err)
	}
}

func isStatus(err error, code int) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == code
}
