// Package registryproxy is the registry mirror containerd points at: the OCI distribution pull
// API as an http.Handler. Blobs come through the P2P network (the Blobs interface, which the
// dfdaemon implements); manifests, tags and auth challenges pass through to the upstream
// registry chosen by containerd's ?ns= parameter. Who may read a blob is the Blobs
// implementation's decision (the dfdaemon's gate: private content only after the upstream it
// came from accepted the requester's own credentials); the mirror relays its refusals, and a
// pull never breaks because of P2P: when the network fails or stalls, the mirror streams from
// the upstream.
//
// It must not import dfdaemon, must not accept pushes or deletes, and never takes a filesystem
// path from the network.
package registryproxy

import (
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/pouch-p2p/pouch/internal/netguard"

	// Digest algorithms go-digest checks against.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Blobs fetches content-addressed blobs through the P2P network.
type Blobs interface {
	// Fetch starts or joins the download of req and returns once its size is known, if the
	// requester may read the blob: a blob fetched with credentials only when the upstream and
	// repository it came from are the ones req names and accept req's Authorization. A refusal
	// is a *StatusError; a blob of another upstream or repository is ErrNotShared.
	Fetch(ctx context.Context, req BlobRequest) (Blob, error)
}

// BlobRequest names one blob: its digest is the task, URL where the seed fetches it and where
// the requester is authorized, Header what it sends there (the requester's Authorization, or
// the mirror's configured credentials for a client that sent none).
type BlobRequest struct {
	URL    string
	Header http.Header
	Digest digest.Digest
	// Want, when set, is all the client reads of the blob (a Range request with both ends, as
	// lazy-pulling snapshotters send): only the pieces that cover it need fetching. Nil: the
	// whole blob.
	Want *httprange.Range
}

// Blob is a running or finished download.
type Blob interface {
	Size() int64
	// NewReader streams the content from off as it arrives; at the end it returns an error
	// instead of io.EOF if the whole blob failed its digest check.
	NewReader(ctx context.Context, off int64) io.Reader
	Close()
}

// Options are the proxy's dependencies; all are optional.
type Options struct {
	Log *zap.Logger
	// Registerer receives the proxy's metrics.
	Registerer prometheus.Registerer
	// Policy keeps upstream requests away from forbidden addresses (SSRF); the zero Policy
	// refuses loopback and link-local upstreams.
	Policy netguard.Policy
}

// Proxy is the mirror handler; mount it at /v2/.
type Proxy struct {
	cfg     Config
	blobs   Blobs
	log     *zap.Logger
	policy  netguard.Policy
	metrics *metrics
	allowed map[string]bool
	known   map[string]bool // the registries named in the config: the registry label's values

	mu        sync.Mutex
	upstreams *simplelru.LRU[string, *upstream] // by ns; bounded, since any client names one

	flights   singleflight.Group
	manifests *manifestCache
	tags      *expirable.LRU[string, *manifest] // by-tag answers, for TagTTL
}

var _ http.Handler = (*Proxy)(nil)

// New builds the handler.
func New(cfg Config, blobs Blobs, opts Options) (*Proxy, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if blobs == nil {
		return nil, fmt.Errorf("registryproxy: no Blobs")
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg: cfg, blobs: blobs, log: log.Named("registryproxy"), policy: opts.Policy, metrics: m,
		allowed:   map[string]bool{},
		known:     map[string]bool{},
		upstreams: newUpstreams(),
		manifests: newManifestCache(cfg.ManifestCacheBytes),
		tags:      expirable.NewLRU[string, *manifest](tagCacheEntries, nil, cfg.TagTTL),
	}
	for _, a := range cfg.Allowed {
		a = canonicalRegistry(a)
		p.allowed[a] = true
		p.known[a] = true
	}
	for h := range cfg.Registries {
		p.known[canonicalRegistry(h)] = true
	}
	if cfg.Default != "" {
		p.known[canonicalRegistry(cfg.Default)] = true
	}
	if p.cfg.Default != "" && len(p.allowed) > 0 && !p.allowed[strings.ToLower(p.cfg.Default)] {
		return nil, fmt.Errorf("registryproxy: default %s is not in the allowed registries", p.cfg.Default)
	}
	return p, nil
}

// route is a parsed /v2/ request.
type route struct {
	kind routeKind
	name string // repository as the client sent it
	ref  string // tag or digest
}

// routeKind is what a /v2/ request asks for; it is also the "kind" label of the requests metric.
type routeKind string

const (
	routeBase     routeKind = "base"     // /v2/: the API version check
	routeManifest routeKind = "manifest" // /v2/NAME/manifests/REF
	routeBlob     routeKind = "blob"     // /v2/NAME/blobs/DIGEST
	routeTags     routeKind = "tags"     // /v2/NAME/tags/list
	routeOther    routeKind = "other"    // anything the mirror does not serve
)

// ServeHTTP answers the OCI distribution pull API.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &httpx.StatusWriter{ResponseWriter: w}
	start := time.Now()
	rt, status, code, msg := parseRoute(r.URL.EscapedPath())
	registry := registryNone
	defer func() {
		p.metrics.requests.WithLabelValues(string(rt.kind), fmt.Sprint(sw.Status()), registry).Inc()
		p.metrics.latency.WithLabelValues(string(rt.kind), registry).Observe(time.Since(start).Seconds())
		if p.log.Core().Enabled(zap.DebugLevel) {
			p.log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("ns", r.URL.Query().Get("ns")), zap.Int("status", sw.Status()), zap.Duration("took", time.Since(start)))
		}
	}()
	w = sw
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, CodeUnsupported, "the mirror is read-only: "+r.Method+" is not supported", nil)
		return
	}
	if status != 0 {
		writeError(w, status, code, msg, nil)
		return
	}
	if rt.kind == routeBase && r.URL.Query().Get("ns") == "" && p.cfg.Default == "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
		return
	}
	up, status, code, msg := p.resolveUpstream(r)
	if up != nil {
		registry = p.registryLabel(up.name)
	}
	if up == nil {
		writeError(w, status, code, msg, nil)
		return
	}
	switch rt.kind {
	case routeBase:
		p.passThrough(w, r, up, up.base+"/v2/", "")
	case routeTags:
		repo := up.repo(rt.name)
		u := up.url(repo, "/tags/list")
		if q := tagsQuery(r); q != "" {
			u += "?" + q
		}
		p.passThrough(w, r, up, u, repo)
	case routeManifest:
		p.serveManifest(w, r, up, rt)
	case routeBlob:
		p.serveBlob(w, r, up, rt)
	}
}

// parseRoute splits an escaped /v2/ path and validates the name and reference.
func parseRoute(escaped string) (route, int, string, string) {
	rest, ok := strings.CutPrefix(escaped, "/v2/")
	if !ok {
		if escaped == "/v2" {
			return route{kind: routeBase}, 0, "", ""
		}
		return route{kind: routeOther}, http.StatusNotFound, CodeUnsupported, "not an OCI distribution path"
	}
	if rest == "" {
		return route{kind: routeBase}, 0, "", ""
	}
	if strings.Contains(rest, "%") {
		// Escapes have no place in a repository name or a reference; "%2e%2e" is a traversal.
		return route{kind: routeOther}, http.StatusBadRequest, CodeNameInvalid, "escaped characters in the path"
	}
	var rt route
	switch {
	case strings.HasSuffix(rest, "/tags/list"):
		rt = route{kind: routeTags, name: strings.TrimSuffix(rest, "/tags/list")}
	default:
		i := strings.LastIndex(rest, "/manifests/")
		j := strings.LastIndex(rest, "/blobs/")
		switch {
		case i > 0 && i > j:
			rt = route{kind: routeManifest, name: rest[:i], ref: rest[i+len("/manifests/"):]}
		case j > 0:
			rt = route{kind: routeBlob, name: rest[:j], ref: rest[j+len("/blobs/"):]}
		default:
			if strings.Contains(rest, "/blobs/uploads") || strings.HasPrefix(rest, "_catalog") {
				return route{kind: routeOther}, http.StatusNotFound, CodeUnsupported, "the mirror only serves pulls"
			}
			return route{kind: routeOther}, http.StatusNotFound, CodeUnsupported, "not an OCI distribution path"
		}
	}
	if !validName(rt.name) {
		return rt, http.StatusBadRequest, CodeNameInvalid, fmt.Sprintf("invalid repository name %q", rt.name)
	}
	switch rt.kind {
	case routeBlob:
		if strings.HasPrefix(rt.ref, "uploads") {
			return rt, http.StatusMethodNotAllowed, CodeUnsupported, "the mirror only serves pulls"
		}
		if _, err := digest.Parse(rt.ref); err != nil {
			return rt, http.StatusBadRequest, CodeDigestInvalid, fmt.Sprintf("invalid digest %q: %v", rt.ref, err)
		}
	case routeManifest:
		if strings.Contains(rt.ref, ":") {
			if _, err := digest.Parse(rt.ref); err != nil {
				return rt, http.StatusBadRequest, CodeDigestInvalid, fmt.Sprintf("invalid digest %q: %v", rt.ref, err)
			}
		} else if !tagRe(rt.ref) {
			return rt, http.StatusBadRequest, CodeManifestUnknown, fmt.Sprintf("invalid tag %q", rt.ref)
		}
	}
	return rt, 0, "", ""
}

// validName checks a repository path against distribution/reference's grammar.
func validName(name string) bool {
	if name == "" || len(name) > reference.RepositoryNameTotalLengthMax {
		return false
	}
	const domain = "pouch.invalid/"
	n, err := reference.ParseNamed(domain + name)
	return err == nil && reference.IsNameOnly(n) && reference.Path(n) == name
}

func tagRe(tag string) bool {
	if tag == "" || len(tag) > 128 {
		return false
	}
	for i, c := range tag {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			return false
		}
	}
	return true
}

// tagsQuery keeps the pagination parameters of a tags list request.
func tagsQuery(r *http.Request) string {
	q := r.URL.Query()
	out := make([]string, 0, 2)
	for _, k := range []string{"n", "last"} {
		if v := q.Get(k); v != "" {
			out = append(out, k+"="+url.QueryEscape(v))
		}
	}
	return strings.Join(out, "&")
}

// passThrough relays one upstream response (the base endpoint, tags lists).
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request, up *upstream, u, repo string) {
	resp, _, err := up.do(r.Context(), up.client, r.Method, u, repo, r.Header)
	if err != nil {
		p.upstreamDown(w, up, err)
		return
	}
	defer resp.Body.Close()
	// Link is left out: it points at the upstream; clients page with "last" through the mirror.
	copyHeaders(w.Header(), resp.Header, "Content-Type", "Content-Length", "WWW-Authenticate")
	if resp.StatusCode == http.StatusNotFound && repo != "" {
		writeError(w, http.StatusNotFound, CodeNameUnknown, fmt.Sprintf("repository %s unknown to %s", repo, up.name), nil)
		return
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
	}
}

// relayRefusal answers with an upstream's non-2xx response. 401 and 403 reach the client
// unchanged (containerd then does the token dance with the WWW-Authenticate challenge).
func (p *Proxy) relayRefusal(w http.ResponseWriter, r *http.Request, up *upstream, status int, h http.Header, body []byte, unknownCode, what string) {
	switch {
	case status == http.StatusNotFound:
		writeError(w, http.StatusNotFound, unknownCode, fmt.Sprintf("%s unknown to %s", what, up.name), nil)
	case status >= 500:
		writeError(w, http.StatusBadGateway, CodeUnsupported, fmt.Sprintf("upstream %s answered %d for %s", up.name, status, what), nil)
	default:
		copyHeaders(w.Header(), h, "WWW-Authenticate", "Content-Type", "Retry-After")
		if len(body) == 0 && r.Method != http.MethodHead {
			code := CodeDenied
			if status == http.StatusUnauthorized {
				code = CodeUnauthorized
			}
			writeError(w, status, code, fmt.Sprintf("upstream %s answered %d for %s", up.name, status, what), nil)
			return
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	}
}

func (p *Proxy) upstreamDown(w http.ResponseWriter, up *upstream, err error) {
	p.log.Warn("upstream unreachable", zap.String("upstream", up.name), zap.Error(err))
	writeError(w, http.StatusBadGateway, CodeUnsupported, fmt.Sprintf("upstream registry %s is unreachable: %v", up.name, err), map[string]string{"upstream": up.name})
}

func copyHeaders(dst, src http.Header, keys ...string) {
	for _, k := range keys {
		if v := src.Values(k); len(v) > 0 {
			dst[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
	}
}
