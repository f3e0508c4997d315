package preheat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	ctrref "github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// The ways resolution fails that an operator acts on; each is wrapped with the reference.
var (
	ErrNotFound     = errors.New("not found in the registry")
	ErrUnauthorized = errors.New("the registry refused the credentials")
	ErrNoPlatform   = errors.New("no manifest for the platform")
)

// maxManifest bounds a manifest or index read from a registry.
const maxManifest = 4 << 20

// RegistryOptions configures a Registry for one job.
type RegistryOptions struct {
	// Client makes every request, token requests included: the supernode's SSRF-guarded
	// client, so a registry is reached only where an origin may be.
	Client *http.Client
	// Insecure lists the registries (host[:port], as in references) reached over plain HTTP.
	Insecure []string
	// Username and Password answer a basic-auth challenge or buy a bearer token, for the
	// reference's registry only. They are never logged.
	Username, Password string
	// Header is sent with every registry request (and with the seed's blob fetches).
	Header http.Header
}

// Registry resolves one job's image reference with containerd's registry client, and
// authorizes the seed's fetches of its blobs with the same authorizer.
type Registry struct {
	opts     RegistryOptions
	ref      string
	spec     ctrref.Spec
	host     docker.RegistryHost // the reference's registry: scheme, API host, client, authorizer
	resolver remotes.Resolver
}

// NewRegistry returns a Registry for ref (in canonical form, see Normalize) holding opts'
// credentials for its lifetime (one job's run).
func NewRegistry(ref string, opts RegistryOptions) (*Registry, error) {
	r := &Registry{opts: opts, ref: ref}
	var err error
	if r.spec, err = ctrref.Parse(ref); err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	authz := docker.NewDockerAuthorizer(docker.WithAuthClient(opts.Client), docker.WithAuthHeader(opts.Header),
		docker.WithAuthCreds(r.credentials))
	hosts := docker.ConfigureDefaultRegistries(docker.WithClient(opts.Client), docker.WithAuthorizer(authz),
		docker.WithPlainHTTP(func(host string) (bool, error) { return slices.Contains(opts.Insecure, host), nil }))
	all, err := hosts(r.spec.Hostname())
	if err != nil || len(all) == 0 {
		return nil, fmt.Errorf("registry of %s: %w", ref, errors.Join(err, errdefs.ErrNotFound))
	}
	r.host = all[0]
	r.resolver = docker.NewResolver(docker.ResolverOptions{Hosts: hosts, Headers: opts.Header})
	return r, nil
}

// credentials gives the job's credentials to its registry's API host only (the authorizer
// asks with the host of the request that was challenged).
func (r *Registry) credentials(host string) (string, string, error) {
	if host != r.host.Host {
		return "", "", nil
	}
	return r.opts.Username, r.opts.Password, nil
}

// Blob is one blob of an image, with the URL the seed fetches it from.
type Blob struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	URL       string
}

// Image is a reference resolved for one platform.
type Image struct {
	Ref      string // canonical reference
	Manifest ocispec.Descriptor
	Blobs    []Blob // the config, then the layers
}

// quiet keeps containerd's own logging (logrus, through the context) out of the supernode's
// log: the supernode logs what failed itself.
func quiet(ctx context.Context) context.Context {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return log.WithLogger(ctx, logrus.NewEntry(l))
}

// Resolve resolves the reference and narrows an index to platform.
func (r *Registry) Resolve(ctx context.Context, platform ocispec.Platform) (Image, error) {
	ctx, ref := quiet(ctx), r.ref
	name, desc, err := r.resolver.Resolve(ctx, ref)
	if err != nil {
		return Image{}, registryError(ref, err)
	}
	fetcher, err := r.resolver.Fetcher(ctx, name)
	if err != nil {
		return Image{}, registryError(ref, err)
	}
	match := platforms.Only(platform)
	// An index may point at another index; two levels are all that registries use.
	for range 3 {
		switch desc.MediaType {
		case ocispec.MediaTypeImageIndex, images.MediaTypeDockerSchema2ManifestList:
			var idx ocispec.Index
			if err := fetchJSON(ctx, fetcher, desc, &idx); err != nil {
				return Image{}, registryError(ref, err)
			}
			if desc, err = pick(idx, match); err != nil {
				return Image{}, fmt.Errorf("%s: %w %s: %s", ref, ErrNoPlatform, platforms.Format(platform), err)
			}
		case ocispec.MediaTypeImageManifest, images.MediaTypeDockerSchema2Manifest:
			var m ocispec.Manifest
			if err := fetchJSON(ctx, fetcher, desc, &m); err != nil {
				return Image{}, registryError(ref, err)
			}
			return r.image(desc, m)
		default:
			return Image{}, fmt.Errorf("%s: media type %q is not an OCI or docker v2 manifest or index", ref, desc.MediaType)
		}
	}
	return Image{}, fmt.Errorf("%s: indexes nested too deep", ref)
}

// pick chooses the index's best manifest for the platform, as containerd's pull does.
func pick(idx ocispec.Index, match platforms.MatchComparer) (ocispec.Descriptor, error) {
	var best *ocispec.Descriptor
	var have []string
	for i, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		have = append(have, platforms.Format(*d.Platform))
		if match.Match(*d.Platform) && (best == nil || match.Less(*d.Platform, *best.Platform)) {
			best = &idx.Manifests[i]
		}
	}
	if best == nil {
		return ocispec.Descriptor{}, fmt.Errorf("the index has %s", strings.Join(have, ", "))
	}
	return *best, nil
}

func fetchJSON(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxManifest {
		return fmt.Errorf("manifest %s is %d bytes, more than %d", desc.Digest, desc.Size, maxManifest)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err != nil {
		return err
	}
	if got := digest.FromBytes(data); got != desc.Digest {
		return fmt.Errorf("manifest %s: the registry sent content hashing to %s", desc.Digest, got)
	}
	return json.Unmarshal(data, v)
}

// image lists the manifest's blobs with their URLs at the reference's registry.
func (r *Registry) image(desc ocispec.Descriptor, m ocispec.Manifest) (Image, error) {
	img := Image{Ref: r.ref, Manifest: desc}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if err := d.Digest.Validate(); err != nil {
			return Image{}, fmt.Errorf("%s: manifest %s names a bad digest: %w", r.ref, desc.Digest, err)
		}
		img.Blobs = append(img.Blobs, Blob{Digest: d.Digest, MediaType: d.MediaType, Size: d.Size, URL: r.BlobURL(d.Digest)})
	}
	return img, nil
}

// BlobURL is where blob d of the reference's repository is fetched: the registry's API host
// (Docker Hub's for docker.io), over plain HTTP for an insecure registry.
func (r *Registry) BlobURL(d digest.Digest) string {
	repo := strings.TrimPrefix(r.spec.Locator, r.spec.Hostname()+"/")
	return fmt.Sprintf("%s://%s%s/%s/blobs/%s", r.host.Scheme, r.host.Host, r.host.Path, repo, d)
}

// Authorize returns the headers the seed fetches blob b with: the job's headers and the
// Authorization the registry accepts for it (a bearer token bought by containerd's authorizer,
// or basic auth). It asks the registry for the blob (HEAD) to know: a 401 hands the challenge
// to the authorizer, which answers the retry; a 404 is ErrNotFound, a second 401 or a 403
// ErrUnauthorized.
func (r *Registry) Authorize(ctx context.Context, b Blob) (http.Header, error) {
	ctx, ref, host := quiet(ctx), r.ref, r.host
	ctx, err := docker.ContextWithRepositoryScope(ctx, r.spec, false)
	if err != nil {
		return nil, err
	}
	var challenged []*http.Response
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, b.URL, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range r.opts.Header {
			req.Header[k] = slices.Clone(v)
		}
		if err := host.Authorizer.Authorize(ctx, req); err != nil {
			return nil, registryError(ref, err)
		}
		resp, err := host.Client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s: blob %s: %w", ref, b.Digest, err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return req.Header, nil
		case resp.StatusCode == http.StatusUnauthorized && len(challenged) == 0:
			challenged = append(challenged, resp)
			if err := host.Authorizer.AddResponses(ctx, challenged); err != nil {
				return nil, registryError(ref, err)
			}
		case resp.StatusCode == http.StatusNotFound:
			return nil, fmt.Errorf("%s: blob %s: %w", ref, b.Digest, ErrNotFound)
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return nil, fmt.Errorf("%s: blob %s: %w (%s)", ref, b.Digest, ErrUnauthorized, resp.Status)
		default:
			return nil, fmt.Errorf("%s: blob %s: the registry answered %s", ref, b.Digest, resp.Status)
		}
	}
}

// registryError names what an operator acts on in containerd's errors.
func registryError(ref string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return fmt.Errorf("%s: %w", ref, ErrNotFound)
	case errors.Is(err, docker.ErrInvalidAuthorization), strings.Contains(msg, "401 Unauthorized"),
		strings.Contains(msg, "403 Forbidden"), strings.Contains(msg, "no basic auth credentials"):
		return fmt.Errorf("%s: %w: %w", ref, ErrUnauthorized, err)
	}
	return fmt.Errorf("%s: %w", ref, err)
}
