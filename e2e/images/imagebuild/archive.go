package imagebuild

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotation keys on the index.json entry that name the image on import.
const (
	// AnnotationImageName holds the full reference; containerd's client.Import names
	// the image after it.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName holds the tag, as the OCI image layout specification uses it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// maxBlob bounds a single archive entry read by Open.
const maxBlob = 1 << 30

// writeArchive writes img as an OCI image layout in a tar file (oci-layout, index.json,
// blobs/sha256/…) that also carries a Docker manifest.json, so containerd's
// client.Import, `ctr images import` and `docker load` all accept it. The index entry
// is annotated with ref (AnnotationImageName) and its tag (AnnotationRefName).
func writeArchive(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}

	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	entry := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch}); err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		return nil
	}
	bytesEntry := func(name string, data []byte) error { return entry(name, int64(len(data)), bytes.NewReader(data)) }

	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755, ModTime: epoch}); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/sha256/", Mode: 0o755, ModTime: epoch}); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	var layerFiles []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("layer digest: %w", err)
		}
		size, err := l.Size()
		if err != nil {
			return fmt.Errorf("layer size: %w", err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		err = entry(blobPath(d), size, rc)
		rc.Close()
		if err != nil {
			return err
		}
		layerFiles = append(layerFiles, blobPath(d))
	}
	if err := bytesEntry(blobPath(manifest.Config.Digest), rawConfig); err != nil {
		return err
	}
	mDigest, mSize, err := v1.SHA256(bytes.NewReader(rawManifest))
	if err != nil {
		return fmt.Errorf("manifest digest: %w", err)
	}
	if err := bytesEntry(blobPath(mDigest), rawManifest); err != nil {
		return err
	}

	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   manifest.MediaType,
			Digest:      mDigest,
			Size:        mSize,
			Annotations: map[string]string{AnnotationImageName: tag.String(), AnnotationRefName: tag.TagStr()},
			Platform:    &v1.Platform{Architecture: cf.Architecture, OS: cf.OS},
		}},
	}
	rawIndex, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if err := bytesEntry("index.json", rawIndex); err != nil {
		return err
	}
	dockerManifest, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blobPath(manifest.Config.Digest), RepoTags: []string{tag.String()}, Layers: layerFiles}})
	if err != nil {
		return fmt.Errorf("docker manifest: %w", err)
	}
	if err := bytesEntry("manifest.json", dockerManifest); err != nil {
		return err
	}
	if err := bytesEntry("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// Archive is an image read back from an archive written by Build.
type Archive struct {
	// Ref is the reference from the index annotation (AnnotationImageName).
	Ref string
	// Descriptor is the index.json entry of the image manifest.
	Descriptor v1.Descriptor
	// Image serves manifest, config and layers from memory; digests are verified.
	Image v1.Image
}

// Open reads an OCI image-layout archive (as written by Build) into memory and returns
// its first image. Every blob's content is checked against its sha256 name. Returns an
// error when the tar is not an OCI layout, index.json lists no manifest, or a blob the
// manifest needs is missing or corrupt.
func Open(file string) (*Archive, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", file, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if hdr.Size > maxBlob {
			return nil, fmt.Errorf("archive %s: entry %s is %d bytes, more than %d", file, hdr.Name, hdr.Size, maxBlob)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("archive %s: read %s: %w", file, hdr.Name, err)
		}
		entries[path.Clean(hdr.Name)] = data
	}
	if _, ok := entries["oci-layout"]; !ok {
		return nil, fmt.Errorf("archive %s: no oci-layout file: not an OCI image layout", file)
	}
	for n, data := range entries {
		if hexDigest, ok := strings.CutPrefix(n, "blobs/sha256/"); ok {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != hexDigest {
				return nil, fmt.Errorf("archive %s: blob %s does not match its digest", file, n)
			}
		}
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(entries["index.json"], &index); err != nil {
		return nil, fmt.Errorf("archive %s: index.json: %w", file, err)
	}
	if len(index.Manifests) == 0 {
		return nil, fmt.Errorf("archive %s: index.json lists no manifest", file)
	}
	desc := index.Manifests[0]
	core := &archiveImage{entries: entries, desc: desc}
	raw, ok := entries[blobPath(desc.Digest)]
	if !ok {
		return nil, fmt.Errorf("archive %s: manifest %s missing", file, desc.Digest)
	}
	core.rawManifest = raw
	if err := json.Unmarshal(raw, &core.manifest); err != nil {
		return nil, fmt.Errorf("archive %s: manifest: %w", file, err)
	}
	if _, ok := entries[blobPath(core.manifest.Config.Digest)]; !ok {
		return nil, fmt.Errorf("archive %s: config %s missing", file, core.manifest.Config.Digest)
	}
	for _, l := range core.manifest.Layers {
		if _, ok := entries[blobPath(l.Digest)]; !ok {
			return nil, fmt.Errorf("archive %s: layer %s missing", file, l.Digest)
		}
	}
	img, err := partial.CompressedToImage(core)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", file, err)
	}
	return &Archive{Ref: desc.Annotations[AnnotationImageName], Descriptor: desc, Image: img}, nil
}

// archiveImage is the partial.CompressedImageCore of an archive held in memory.
type archiveImage struct {
	entries     map[string][]byte
	desc        v1.Descriptor
	rawManifest []byte
	manifest    v1.Manifest
}

func (a *archiveImage) RawConfigFile() ([]byte, error) {
	return a.entries[blobPath(a.manifest.Config.Digest)], nil
}

func (a *archiveImage) MediaType() (types.MediaType, error) { return a.manifest.MediaType, nil }

func (a *archiveImage) RawManifest() ([]byte, error) { return a.rawManifest, nil }

func (a *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range a.manifest.Layers {
		if l.Digest == h {
			return &archiveLayer{desc: l, data: a.entries[blobPath(h)]}, nil
		}
	}
	if h == a.manifest.Config.Digest {
		return &archiveLayer{desc: a.manifest.Config, data: a.entries[blobPath(h)]}, nil
	}
	return nil, fmt.Errorf("blob %s is not in this image", h)
}

// archiveLayer is one blob of an archive held in memory.
type archiveLayer struct {
	desc v1.Descriptor
	data []byte
}

func (l *archiveLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *archiveLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}

var (
	_ partial.CompressedImageCore = (*archiveImage)(nil)
	_ partial.CompressedLayer     = (*archiveLayer)(nil)
)
