package image

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// fakeBuild builds the image from stand-in binaries (no compiler run) for one or two platforms.
func fakeBuild(t *testing.T, platforms ...string) (v1.ImageIndex, []v1.Image) {
	t.Helper()
	dir := t.TempDir()
	for _, b := range Binaries {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!stand-in for "+b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, p := range platforms {
		bins[p] = dir
	}
	idx, images, err := Build(context.Background(), Options{
		Platforms: platforms, Version: "v1.2.3", Revision: "abc123", Source: "https://example.org/pouch",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), CAFile: ca, BinDirs: bins,
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx, images
}

// The image holds the binaries in /usr/local/bin, the CA bundle and a pouch user; it runs as
// that user by default, names no entrypoint and carries the OCI labels.
func TestImageLayout(t *testing.T) {
	t.Parallel()
	_, images := fakeBuild(t, "linux/amd64")
	if len(images) != 1 {
		t.Fatalf("%d images, want 1", len(images))
	}
	img := images[0]
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers: %d, %v; want 2 (base, binaries)", len(layers), err)
	}
	files := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files["/"+h.Name] = h
		}
		rc.Close()
	}
	for _, b := range Binaries {
		h := files[BinDir+"/"+b]
		if h == nil || h.Mode != 0o755 || h.Typeflag != tar.TypeReg {
			t.Errorf("%s/%s: %+v, want an executable file", BinDir, b, h)
		}
	}
	for path, want := range map[string]int64{CAFile: 0o644, "/etc/passwd": 0o644, "/etc/group": 0o644, "/tmp/": 0o1777} {
		if h := files[path]; h == nil || h.Mode != want {
			t.Errorf("%s: %+v, want mode %o", path, h, want)
		}
	}
	if h := files[DataDir+"/"]; h == nil || h.Uid != UID || h.Gid != GID {
		t.Errorf("%s: %+v, want a directory owned by %d:%d", DataDir, h, UID, GID)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if len(cf.Config.Entrypoint) != 0 || cf.Config.User != "65532:65532" || !slices.Contains(cf.Config.Env, "PATH=/usr/local/bin:/usr/bin:/bin") {
		t.Errorf("config: entrypoint %q, user %q, env %q; want none, 65532:65532, PATH with %s", cf.Config.Entrypoint, cf.Config.User, cf.Config.Env, BinDir)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.source":   "https://example.org/pouch",
		"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
}

// The same inputs give the same digest: a rebuild of one commit is the same image.
func TestImageReproducible(t *testing.T) {
	t.Parallel()
	_, a := fakeBuild(t, "linux/amd64")
	_, b := fakeBuild(t, "linux/amd64")
	da, _ := a[0].Digest()
	db, _ := b[0].Digest()
	if da != db {
		t.Errorf("two builds of the same inputs: %s and %s", da, db)
	}
}

// Several platforms make an index with one manifest each; the layout names it by the tag.
func TestMultiPlatformLayout(t *testing.T) {
	t.Parallel()
	idx, images := fakeBuild(t, "linux/amd64", "linux/arm64")
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, Taggable(idx, images), "v1.2.3"); err != nil {
		t.Fatal(err)
	}
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := root.IndexManifest()
	if err != nil || len(rm.Manifests) != 1 || rm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1.2.3" {
		t.Fatalf("layout index: %+v, %v; want one entry named v1.2.3", rm, err)
	}
	inner, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := inner.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range im.Manifests {
		got = append(got, m.Platform.String())
	}
	if !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", got)
	}
}

func TestTag(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"v0.3.0":                  "v0.3.0",
		"v0.3.0-4-gabc1234-dirty": "v0.3.0-4-gabc1234-dirty",
		"v1.0.0+build.5":          "v1.0.0-build.5",
		"":                        "dev",
		"-x":                      "x",
	} {
		if got := Tag(in); got != want {
			t.Errorf("Tag(%q) = %q, want %q", in, got, want)
		}
	}
}
