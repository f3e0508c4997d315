// Package ociimage builds small runnable OCI images in memory (a static busybox plus layers of
// random data) and pushes them to a registry over the OCI distribution API. Tests, `make demo`
// and dfbench use it to have an image to pull without any download.
//
// It holds whole images in memory: it is for test images, never for real content.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNoBusybox is returned by Busybox when Debian's busybox-static is not installed; tests skip
// on it and on nothing else.
var ErrNoBusybox = errors.New("no static busybox")

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// Blob is one piece of content with its media type and digest.
type Blob struct {
	MediaType string
	Digest    digest.Digest
	Data      []byte
}

// Descriptor describes the blob for a manifest.
func (b Blob) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: int64(len(b.Data))}
}

func newBlob(mediaType string, data []byte) Blob {
	return Blob{MediaType: mediaType, Digest: digest.FromBytes(data), Data: data}
}

// Image is a single-platform OCI image.
type Image struct {
	Manifest Blob
	Config   Blob
	Layers   []Blob
}

// Busybox builds a runnable linux/amd64 OCI image: layer 0 holds /bin/busybox with symlinks
// for sh, echo, cat, ls, sleep and true (gzip-compressed); then extra layers of random data,
// one uncompressed tar with one file each, totalling extraBytes. The command prints
// "hello from pouch".
func Busybox(extra int, extraBytes int64) (*Image, error) {
	if extra < 0 || extraBytes < 0 || (extra == 0 && extraBytes > 0) {
		return nil, fmt.Errorf("ociimage: %d extra layers cannot hold %d bytes", extra, extraBytes)
	}
	bin, err := os.ReadFile(BusyboxPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ociimage: %s is missing: apt-get install busybox-static: %w", BusyboxPath, ErrNoBusybox)
	}
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	base, err := busyboxLayer(bin)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	rng := rand.NewChaCha8(seed)
	layers := []Blob{base.compressed}
	diffIDs := []digest.Digest{base.diffID}
	for i := range extra {
		n := extraBytes / int64(extra)
		if int64(i) < extraBytes%int64(extra) {
			n++
		}
		data := make([]byte, n)
		_, _ = rng.Read(data)
		layer, err := tarLayer([]tarEntry{{name: fmt.Sprintf("data/layer-%d.bin", i), mode: 0o644, data: data}})
		if err != nil {
			return nil, err
		}
		b := newBlob(ocispec.MediaTypeImageLayer, layer)
		layers = append(layers, b)
		diffIDs = append(diffIDs, b.Digest)
	}
	cfg := ocispec.Image{
		Created:  ptr(time.Unix(0, 0).UTC()),
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/bin"},
			Cmd: []string{"/bin/sh", "-c", "echo hello from pouch"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	img := &Image{Config: newBlob(ocispec.MediaTypeImageConfig, rawCfg), Layers: layers}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config.Descriptor(),
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.Descriptor())
	}
	rawM, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	img.Manifest = newBlob(ocispec.MediaTypeImageManifest, rawM)
	return img, nil
}

// Index is an OCI image index that points at the image's manifest for linux/amd64.
func (img *Image) Index() Blob {
	d := img.Manifest.Descriptor()
	d.Platform = &ocispec.Platform{Architecture: "amd64", OS: "linux"}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{d},
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		panic(err) // an Index of plain strings and numbers always marshals
	}
	return newBlob(ocispec.MediaTypeImageIndex, raw)
}

// TotalSize is the size of the manifest, the config and every layer.
func (img *Image) TotalSize() int64 {
	n := int64(len(img.Manifest.Data) + len(img.Config.Data))
	for _, l := range img.Layers {
		n += int64(len(l.Data))
	}
	return n
}

// Blobs is the config followed by the layers: everything the manifest references.
func (img *Image) Blobs() []Blob {
	return append([]Blob{img.Config}, img.Layers...)
}

type tarEntry struct {
	name     string
	mode     int64
	data     []byte
	linkname string // a symlink when set
	dir      bool
}

func tarLayer(entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.linkname != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.linkname
		default:
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("ociimage: tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("ociimage: tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type baseLayer struct {
	compressed Blob
	diffID     digest.Digest
}

func busyboxLayer(bin []byte) (baseLayer, error) {
	entries := []tarEntry{{name: "bin/", mode: 0o755, dir: true}, {name: "bin/busybox", mode: 0o755, data: bin}}
	for _, tool := range []string{"sh", "echo", "cat", "ls", "sleep", "true"} {
		entries = append(entries, tarEntry{name: "bin/" + tool, mode: 0o777, linkname: "busybox"})
	}
	raw, err := tarLayer(entries)
	if err != nil {
		return baseLayer{}, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw); err != nil {
		return baseLayer{}, err
	}
	if err := zw.Close(); err != nil {
		return baseLayer{}, err
	}
	return baseLayer{compressed: newBlob(ocispec.MediaTypeImageLayerGzip, gz.Bytes()), diffID: digest.FromBytes(raw)}, nil
}

func ptr[T any](v T) *T { return &v }
