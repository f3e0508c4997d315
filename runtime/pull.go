package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is an image held by containerd.
type Image struct {
	// Name is the full reference, e.g. docker.io/library/busybox:latest.
	Name string
	// Digest is the digest of the manifest or index the name points to.
	Digest digest.Digest
	// Size is the bytes of the image's blobs for this platform (config and compressed layers).
	Size int64
	// Created is when containerd recorded the image.
	Created time.Time
}

// Pull fetches ref through the hosts directory (so through the mirror its hosts.toml names) and
// unpacks it into the snapshotter. progress, when not nil, gets one line when each layer starts
// and one when it is stored (or found already present), then a summary line.
func (r *Runtime) Pull(ctx context.Context, ref string, progress io.Writer) (Image, error) {
	return r.PullPlatform(ctx, ref, "", progress)
}

// PullPlatform is Pull for another platform than the host's ("linux/arm64"; "" is the host's).
func (r *Runtime) PullPlatform(ctx context.Context, ref, platform string, progress io.Writer) (Image, error) {
	_, err := r.pull(ctx, ref, platform, progress)
	if err != nil {
		return Image{}, err
	}
	name, _ := NormalizeRef(ref)
	img, err := r.client.GetImage(ctx, name)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	return r.describe(ctx, img)
}

func (r *Runtime) pull(ctx context.Context, ref, platform string, progress io.Writer) (containerd.Image, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid image reference %q: %w", ErrInvalid, ref, err)
	}
	name := named.String()
	if progress == nil {
		progress = io.Discard
	}
	start := time.Now()
	pr := &pullProgress{w: progress, cs: r.client.ContentStore()}
	fmt.Fprintf(progress, "pulling %s\n", name)
	registry := reference.Domain(named)
	opts := []containerd.RemoteOpt{
		containerd.WithPullUnpack,
		containerd.WithResolver(r.resolver(ctx, registry)),
		containerd.WithImageHandlerWrapper(pr.wrap),
	}
	if r.cfg.Snapshotter != "" {
		opts = append(opts, containerd.WithPullSnapshotter(r.cfg.Snapshotter))
	}
	if platform != "" {
		p, err := platforms.Parse(platform)
		if err != nil {
			return nil, fmt.Errorf("%w: --platform %q: %w", ErrInvalid, platform, err)
		}
		opts = append(opts, containerd.WithPlatformMatcher(platforms.Only(p)))
	}
	img, err := r.client.Pull(ctx, name, opts...)
	if err != nil {
		switch {
		case isNotFound(err):
			return nil, fmt.Errorf("%w: %s", ErrImageNotFound, name)
		case isUnauthorized(err):
			return nil, fmt.Errorf("%w: pull %s: the registry refused the credentials (or asked for some): log in with pouch login %s (%w)", ErrUnauthorized, name, registry, err)
		}
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	out, err := r.describe(ctx, img)
	if err != nil {
		return nil, err
	}
	layers, bytes := pr.totals()
	fmt.Fprintf(progress, "pulled %s %s: %d layers, %s fetched, in %s\n",
		out.Name, out.Digest, layers, units.BytesSize(float64(bytes)), time.Since(start).Round(time.Millisecond))
	return img, nil
}

// isUnauthorized reports a registry's refusal as containerd's resolver and fetcher word it.
func isUnauthorized(err error) bool {
	if errors.Is(err, docker.ErrInvalidAuthorization) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "401 Unauthorized") || strings.Contains(msg, "403 Forbidden") ||
		strings.Contains(msg, "no basic auth credentials")
}

// pullProgress prints a line per layer around containerd's fetch of it.
type pullProgress struct {
	w       io.Writer
	cs      content.Store
	mu      sync.Mutex
	layers  int
	fetched int64
}

// wrap wraps containerd's whole per-descriptor handler chain: when h returns, the blob is in
// the content store.
func (p *pullProgress) wrap(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if !images.IsLayerType(desc.MediaType) {
			return h.Handle(ctx, desc)
		}
		short := shortDigest(desc.Digest)
		if _, err := p.cs.Info(ctx, desc.Digest); err == nil {
			p.count(0)
			p.printf("%s: already present (%s)\n", short, units.BytesSize(float64(desc.Size)))
			return h.Handle(ctx, desc)
		}
		start := time.Now()
		p.printf("%s: downloading %s\n", short, units.BytesSize(float64(desc.Size)))
		children, err := h.Handle(ctx, desc)
		if err != nil {
			p.printf("%s: failed: %v\n", short, err)
			return nil, err
		}
		p.count(desc.Size)
		p.printf("%s: done %s in %s\n", short, units.BytesSize(float64(desc.Size)), time.Since(start).Round(time.Millisecond))
		return children, nil
	})
}

func (p *pullProgress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func (p *pullProgress) count(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layers++
	p.fetched += n
}

func (p *pullProgress) totals() (int, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.layers, p.fetched
}

// describe turns a containerd image into an Image.
func (r *Runtime) describe(ctx context.Context, img containerd.Image) (Image, error) {
	size, err := img.Size(ctx)
	if err != nil {
		return Image{}, fmt.Errorf("size of %s: %w", img.Name(), err)
	}
	meta := img.Metadata()
	return Image{Name: img.Name(), Digest: img.Target().Digest, Size: size, Created: meta.CreatedAt}, nil
}

func shortDigest(d digest.Digest) string {
	enc := d.Encoded()
	if len(enc) > 12 {
		enc = enc[:12]
	}
	return d.Algorithm().String() + ":" + enc
}
