// Package image builds Pouch's OCI image without Docker: the static binaries of every command,
// the build host's CA certificates and a non-root user, as layers on an empty base
// (go-containerregistry), for one or more Linux platforms. deploy/cmd/image is its command
// line; the chart test reads its constants (name, paths, user) to hold the chart to the image.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Name is the image's repository name: `make image-push IMAGE_REPO=host:port/pouch`, and
// the chart's default image.repository.
const Name = "pouch"

// Binaries are the commands the image carries, all in BinDir: dfget's one-shot peer
// (--supernode) is the dfdaemon beside it.
var Binaries = []string{"supernode", "dfdaemon", "dfget", "pouch", "dfbench"}

// Where things live in the image.
const (
	BinDir  = "/usr/local/bin"
	CAFile  = "/etc/ssl/certs/ca-certificates.crt"
	DataDir = "/var/lib/pouch" // owned by the pouch user, the daemons' default home
	// UID and GID of the image's "pouch" user, the default user (distroless's "nonroot" number).
	UID = 65532
	GID = 65532
)

// ErrBadOptions is returned for options that cannot build an image.
var ErrBadOptions = errors.New("image: bad options")

// Options say what to build.
type Options struct {
	ModuleDir string   // the Pouch module, where `go build ./cmd/...` runs
	Platforms []string // linux/amd64, linux/arm64, ...
	Version   string   // the release, set into every binary and the image's labels and tag
	Revision  string   // the VCS commit
	Source    string   // label org.opencontainers.image.source: where the source lives
	Created   time.Time
	CAFile    string // the build host's CA bundle, copied to CAFile in the image
	// BinDirs, when set, maps a platform to a directory of prebuilt binaries instead of
	// building them (for tests that already built them).
	BinDirs map[string]string
	WorkDir string // where binaries are built (default: a temporary directory)
}

// Build returns the image: one per platform, gathered in an index when there are several.
// The result is an image index either way (with a single manifest for one platform), so the
// layout and the push treat both alike.
func Build(ctx context.Context, o Options) (v1.ImageIndex, []v1.Image, error) {
	if len(o.Platforms) == 0 {
		return nil, nil, fmt.Errorf("%w: no platform", ErrBadOptions)
	}
	base, err := baseLayer(o.CAFile)
	if err != nil {
		return nil, nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var images []v1.Image
	for _, p := range o.Platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil || plat.OS != "linux" || plat.Architecture == "" {
			return nil, nil, fmt.Errorf("%w: platform %q: want linux/ARCH", ErrBadOptions, p)
		}
		dir := o.BinDirs[p]
		if dir == "" {
			if dir, err = buildBinaries(ctx, o, *plat); err != nil {
				return nil, nil, err
			}
		}
		bins, err := binLayer(dir)
		if err != nil {
			return nil, nil, err
		}
		img, err := image(o, *plat, base, bins)
		if err != nil {
			return nil, nil, err
		}
		images = append(images, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	return idx, images, nil
}

// image puts the layers on an empty base and writes the config.
func image(o Options, plat v1.Platform, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: o.Created.UTC()}
	cf.Config = v1.Config{
		// No entrypoint: the image holds five commands and every user (the chart, pouch run,
		// docker run) names the one it runs; an entrypoint would make "IMAGE dfdaemon ..." run
		// "supernode dfdaemon ...". Without arguments it shows the supernode's help.
		Cmd:        []string{"supernode", "--help"},
		Env:        []string{"PATH=" + BinDir + ":/usr/bin:/bin"},
		User:       fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir: DataDir,
		Labels: map[string]string{
			"org.opencontainers.image.title":       "pouch",
			"org.opencontainers.image.description": "Pouch: P2P distribution of container images (supernode, dfdaemon, dfget, pouch, dfbench)",
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.revision":    o.Revision,
			"org.opencontainers.image.source":      o.Source,
			"org.opencontainers.image.created":     cf.Created.Format(time.RFC3339),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// buildBinaries compiles every command, static, for one platform.
func buildBinaries(ctx context.Context, o Options, plat v1.Platform) (string, error) {
	work := o.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "pouch-image-"); err != nil {
			return "", err
		}
	}
	// Absolute: go build runs in the module directory.
	out, err := filepath.Abs(filepath.Join(work, plat.OS+"_"+plat.Architecture+plat.Variant))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w " + LDFlags(o.Version, o.Revision), "-o", out + "/"}
	for _, b := range Binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture)
	if plat.Architecture == "arm" && plat.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(plat.Variant, "v"))
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("image: go build for %s: %w\n%s", plat, err, msg)
	}
	return out, nil
}

// LDFlags set the version every binary's --version prints (package internal/version).
func LDFlags(version, revision string) string {
	const pkg = "github.com/pouch-p2p/pouch/internal/version"
	return fmt.Sprintf("-X %s.version=%s -X %s.commit=%s", pkg, version, pkg, revision)
}

// baseLayer holds what does not change between releases: the CA bundle, the pouch user and
// the directories a non-root daemon writes. A separate layer, so a new release ships only the
// binaries' layer.
func baseLayer(caFile string) (v1.Layer, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("image: CA certificates (the supernode needs them to reach TLS registries): %w", err)
	}
	entries := []entry{
		dir("etc/", 0o755), dir("etc/ssl/", 0o755), dir("etc/ssl/certs/", 0o755),
		file(strings.TrimPrefix(CAFile, "/"), 0o644, ca),
		file("etc/passwd", 0o644, []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\npouch:x:%d:%d:pouch:%s:/sbin/nologin\n", UID, GID, DataDir))),
		file("etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\npouch:x:%d:\n", GID))),
		dir("etc/pouch/", 0o755), // configuration mounted here
		dir("tmp/", 0o1777),
		dir("var/", 0o755), dir("var/lib/", 0o755),
	}
	home := dir(strings.TrimPrefix(DataDir, "/")+"/", 0o755)
	home.uid, home.gid = UID, GID
	return layer(append(entries, home))
}

// binLayer holds the binaries found in directory from.
func binLayer(from string) (v1.Layer, error) {
	entries := []entry{dir("usr/", 0o755), dir("usr/local/", 0o755), dir("usr/local/bin/", 0o755)}
	for _, b := range Binaries {
		data, err := os.ReadFile(filepath.Join(from, b))
		if err != nil {
			return nil, fmt.Errorf("image: binary: %w", err)
		}
		entries = append(entries, file(path.Join(strings.TrimPrefix(BinDir, "/"), b), 0o755, data))
	}
	return layer(entries)
}

type entry struct {
	name     string
	mode     int64
	data     []byte
	dir      bool
	uid, gid int
}

func dir(name string, mode int64) entry { return entry{name: name, mode: mode, dir: true} }
func file(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, data: data}
}

// layer writes entries as a gzip-compressed tar layer, with fixed times so the same inputs
// give the same digest. go-containerregistry compresses once and keeps the result.
func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image: tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("image: tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// badTagChars are those an OCI tag may not hold ([A-Za-z0-9_.-], not starting with . or -).
var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Tag turns a version (git describe's output, a semver with +build) into an image tag.
func Tag(version string) string {
	t := strings.TrimLeft(badTagChars.ReplaceAllString(version, "-"), ".-")
	if t == "" {
		return "dev"
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
