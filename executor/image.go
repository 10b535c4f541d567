package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// RegistryConfig says how images are pulled.
type RegistryConfig struct {
	// Insecure lists registry hosts ("host" or "host:port") reached over plain HTTP.
	// Loopback hosts (127.0.0.0/8, ::1, localhost) are always plain HTTP.
	Insecure []string
	// Credentials maps a registry host ("host" or "host:port") to its credentials.
	Credentials map[string]Credential
}

// Credential is a registry user name and password (or token).
type Credential struct {
	Username string
	Password string
}

func (rc RegistryConfig) plainHTTP(host string) (bool, error) {
	for _, h := range rc.Insecure {
		if h == host {
			return true, nil
		}
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	if name == "localhost" {
		return true, nil
	}
	if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil && ip.IsLoopback() {
		return true, nil
	}
	return false, nil
}

func (rc RegistryConfig) resolver() remotes.Resolver {
	creds := func(host string) (string, string, error) {
		if c, ok := rc.Credentials[host]; ok {
			return c.Username, c.Password, nil
		}
		return "", "", nil
	}
	hosts := docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(rc.plainHTTP),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(creds))),
	)
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts})
}

// normalizeImage turns an image reference as written in a pod ("busybox", "echo:v1",
// "host:5000/app@sha256:…") into containerd's fully qualified name.
func normalizeImage(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w: %v", ref, api.ErrInvalidArgument, err)
	}
	return named.String(), nil
}

// pullPolicy applies Kubernetes' default: Always for ":latest" or no tag, else IfNotPresent.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	named, err := reference.ParseDockerRef(c.Image)
	if err != nil {
		return corev1.PullIfNotPresent
	}
	if _, digested := named.(reference.Digested); digested {
		return corev1.PullIfNotPresent
	}
	if t, ok := named.(reference.Tagged); ok && t.Tag() != "latest" {
		return corev1.PullIfNotPresent
	}
	return corev1.PullAlways
}

// errPullNever is returned for imagePullPolicy Never and an image that is not present.
var errPullNever = errors.New("image not present and imagePullPolicy is Never")

// ensureImage returns the image for c, pulling it according to its pull policy, and
// makes sure it is unpacked into the snapshotter. An image found present and unpacked is
// remembered (not for PullAlways), so the next start of it costs no round trip;
// forgetImage drops it when a create with it fails (the image was removed meanwhile).
func (e *Executor) ensureImage(ctx context.Context, c *corev1.Container) (containerd.Image, error) {
	ref, err := normalizeImage(c.Image)
	if err != nil {
		return nil, err
	}
	policy := pullPolicy(c)
	cl := e.client()
	if policy != corev1.PullAlways {
		if img, ok := e.images.Load(ref); ok {
			return img.(containerd.Image), nil
		}
		img, err := cl.GetImage(ctx, ref)
		if err == nil {
			if err := unpack(ctx, img, e.opts.snapshotter); err != nil {
				return nil, e.unavailable(ctx, err)
			}
			e.images.Store(ref, img)
			return img, nil
		}
		if !errdefs.IsNotFound(err) {
			return nil, e.unavailable(ctx, fmt.Errorf("look up image %s: %w", ref, err))
		}
		if policy == corev1.PullNever {
			return nil, fmt.Errorf("image %s: %w", ref, errPullNever)
		}
	}
	img, err := cl.Pull(ctx, ref,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(e.opts.snapshotter),
		containerd.WithResolver(e.opts.registry.resolver()),
	)
	if err != nil {
		return nil, e.unavailable(ctx, fmt.Errorf("pull %s: %w", ref, err))
	}
	return img, nil
}

// unavailable classes err as api.ErrUnavailable ("containerd unavailable") when
// containerd itself is not answering, so a pull that failed for that reason is not
// reported as the image's fault (ErrImagePull).
func (e *Executor) unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	if !errdefs.IsUnavailable(err) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, serr := e.client().IsServing(c)
		cancel()
		if serr == nil && ok {
			return err
		}
	}
	return fmt.Errorf("containerd unavailable at %s: %w: %v", e.opts.address, api.ErrUnavailable, err)
}

func unpack(ctx context.Context, img containerd.Image, snapshotter string) error {
	ok, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return fmt.Errorf("image %s: check unpacked: %w", img.Name(), err)
	}
	if ok {
		return nil
	}
	if err := img.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", img.Name(), err)
	}
	return nil
}

// ImportArchive loads an OCI (or docker save) archive into the executor's namespace and
// unpacks every image it holds, returning their names. Tests and air-gapped nodes use it
// to pre-load images.
func (e *Executor) ImportArchive(ctx context.Context, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image archive: %w", err)
	}
	defer f.Close()
	return e.Import(ctx, f)
}

// Import loads an image archive from r; see ImportArchive.
func (e *Executor) Import(ctx context.Context, r io.Reader) ([]string, error) {
	cl := e.client()
	if cl == nil {
		return nil, fmt.Errorf("import: executor not started: %w", api.ErrFailedPrecondition)
	}
	ctx = e.nsCtx(ctx)
	imgs, err := cl.Import(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("import image archive: %w", err)
	}
	var names []string
	for _, im := range imgs {
		img := containerd.NewImage(cl, im)
		if err := unpack(ctx, img, e.opts.snapshotter); err != nil {
			return names, err
		}
		names = append(names, im.Name)
	}
	return names, nil
}

// forgetImage drops c's image from the remembered ones.
func (e *Executor) forgetImage(c *corev1.Container) {
	if ref, err := normalizeImage(c.Image); err == nil {
		e.images.Delete(ref)
	}
}
