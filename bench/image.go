package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
)

// imageOrigin is the image workload's origin: the embedded registry holding a generated image
// of K random layers (pulled, never run: it needs no busybox).
type imageOrigin struct {
	reg        *registry.Registry
	img        *image.Image
	repo, tag  string
	blobsTotal int64 // config and layers: what every node fetches
}

const benchRepo, benchTag = "bench/image", "latest"

// startImageOrigin pushes an image of layers random layers of layerBytes in total to a new
// embedded registry whose blob bodies are capped at rate bytes/s (0 = none).
func startImageOrigin(ctx context.Context, addr string, layers int, layerBytes, rate int64) (*imageOrigin, error) {
	img, err := image.Random(layers, layerBytes)
	if err != nil {
		return nil, err
	}
	reg, err := registry.Start(ctx, registry.Options{Listen: addr, BlobRate: rate})
	if err != nil {
		return nil, err
	}
	if err := img.Push(ctx, reg.URL, benchRepo, benchTag, "", ""); err != nil {
		reg.Close()
		return nil, err
	}
	o := &imageOrigin{reg: reg, img: img, repo: benchRepo, tag: benchTag}
	for _, b := range o.blobs() {
		o.blobsTotal += int64(len(b.Data))
	}
	// Pushing counted nothing: the registry counts blob GETs only.
	return o, nil
}

func (o *imageOrigin) blobs() []image.Blob {
	return append([]image.Blob{o.img.Config}, o.img.Layers...)
}

// workload is what every node fetches in a run.
type workload interface {
	// fetch gets the content on node i through its dfdaemon, as a user would (with the
	// fetcher's own digest check), and returns a check of the copy that [Run] calls after it
	// took the node's time: the harness's own check is not part of the node's download.
	fetch(ctx context.Context, cfg Config, nn *netnsNet, i int, daemon *proc, dir string) (check func() error, err error)
	daemonArgs() []string // extra dfdaemon flags
	sent() int64          // bytes the origin has sent so far
	close()
}

// fileWorkload is one file fetched with dfget from a plain HTTP origin.
type fileWorkload struct {
	o   *origin
	sum string
}

func (f *fileWorkload) fetch(ctx context.Context, cfg Config, nn *netnsNet, i int, daemon *proc, dir string) (func() error, error) {
	out := filepath.Join(dir, fmt.Sprintf("node%d.out", i))
	url := f.o.url + "/blob/" + strings.TrimPrefix(f.sum, "sha256:")[:16]
	prog, args := nn.command(i, filepath.Join(cfg.BinDir, "dfget"), url, "-O", out,
		"--daemon", "http://"+daemon.HTTP, "--digest", f.sum, "--quiet")
	if err := runCommand(ctx, prog, args...); err != nil {
		os.Remove(out)
		return nil, err
	}
	// Check the copy independently of dfget's own check.
	return func() error {
		defer os.Remove(out)
		got, err := fileDigest(out)
		if err != nil {
			return err
		}
		if got != f.sum {
			return fmt.Errorf("digest mismatch: got %s", got)
		}
		return nil
	}, nil
}

func (f *fileWorkload) daemonArgs() []string { return nil }
func (f *fileWorkload) sent() int64          { return f.o.sent.Load() }
func (f *fileWorkload) close()               { f.o.close() }

func (o *imageOrigin) fetch(ctx context.Context, _ Config, _ *netnsNet, _ int, daemon *proc, _ string) (func() error, error) {
	// PullImage checks every blob's digest as it reads it, as containerd does.
	return func() error { return nil }, o.pull(ctx, "http://"+daemon.HTTP)
}

func (o *imageOrigin) daemonArgs() []string { return []string{"--registry-insecure", o.reg.Host} }
func (o *imageOrigin) sent() int64          { return o.reg.TotalBlobBytes() }
func (o *imageOrigin) close()               { o.reg.Close() }

// pull fetches the image through a dfdaemon's registry mirror (see PullImage).
func (o *imageOrigin) pull(ctx context.Context, mirror string) error {
	return PullImage(ctx, mirror, o.reg.Host, o.repo, o.tag, o.img)
}

// PullImage fetches img (repo:tag at the registry upstream, host:port) through the registry
// mirror at mirror (http://host:port) as containerd does: the manifest, then every blob at once,
// with ?ns= naming the registry; it checks every digest.
func PullImage(ctx context.Context, mirror, upstream, repo, tag string, img *image.Image) error {
	return PullImageWith(ctx, mirror, upstream, repo, tag, img, "")
}

// PullImageWith is PullImage with an Authorization header (a registry's bearer token) on every
// request, as containerd sends after its token dance with a private registry.
func PullImageWith(ctx context.Context, mirror, upstream, repo, tag string, img *image.Image, auth string) error {
	// get streams one object through w (blobs go through a hasher only: N nodes pulling a
	// multi-gigabyte image at once must not hold it in memory N times).
	get := func(path, accept string, w io.Writer) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, mirror+"/v2/"+repo+path+"?ns="+upstream, nil)
		if err != nil {
			return err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		_, err = io.Copy(w, resp.Body)
		return err
	}
	check := func(path, accept string, want digest.Digest) error {
		h := sha256.New()
		if err := get(path, accept, h); err != nil {
			return err
		}
		if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != want {
			return fmt.Errorf("%s: content hashes to %s, want %s", path, got, want)
		}
		return nil
	}
	if err := check("/manifests/"+tag, ocispec.MediaTypeImageManifest, img.Manifest.Digest); err != nil {
		return err
	}
	blobs := append([]image.Blob{img.Config}, img.Layers...)
	errs := make([]error, len(blobs))
	parallel(len(blobs), len(blobs), func(i int) error {
		errs[i] = check("/blobs/"+blobs[i].Digest.String(), "", blobs[i].Digest)
		return nil
	})
	return errors.Join(errs...)
}
