package registryproxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/remotes/docker/auth"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/pouch-p2p/pouch/internal/taskid"
)

// dockerHub is what containerd sends as ns for Docker Hub, and hubAPI where its API lives.
const (
	dockerHub = "docker.io"
	hubAPI    = "registry-1.docker.io"
)

// upstream is one registry the mirror talks to.
type upstream struct {
	name   string // as in ns: docker.io, 10.0.0.5:5000
	base   string // scheme://api-host
	hub    bool   // Docker Hub: single-component names live under library/
	cfg    RegistryConfig
	client *http.Client // follows redirects
	direct *http.Client // does not: a redirect to storage is already an answer

	mu     sync.Mutex
	tokens *simplelru.LRU[string, cachedToken] // scope → token bought with the static credentials
}

type cachedToken struct {
	auth    string
	expires time.Time
}

// resolveUpstream picks the upstream for a request from its ns parameter or the default.
func (p *Proxy) resolveUpstream(r *http.Request) (*upstream, int, string, string) {
	ns := r.URL.Query().Get("ns")
	if ns == "" {
		ns = p.cfg.Default
	}
	if ns == "" {
		return nil, http.StatusNotFound, CodeNameUnknown, "no upstream registry: the request has no ns parameter and the mirror has no default"
	}
	if err := validHost(ns); err != nil {
		return nil, http.StatusBadRequest, CodeNameInvalid, "ns: " + err.Error()
	}
	ns = canonicalRegistry(ns)
	if len(p.allowed) > 0 && !p.allowed[ns] {
		return nil, http.StatusNotFound, CodeNameUnknown, fmt.Sprintf("registry %s is not mirrored here", ns)
	}
	up, err := p.upstream(ns)
	if err != nil {
		return nil, http.StatusBadGateway, CodeUnsupported, err.Error()
	}
	return up, 0, "", ""
}

// canonicalRegistry is the one name of a registry host: lower case, Docker Hub's aliases as
// docker.io.
func canonicalRegistry(host string) string {
	host = strings.ToLower(host)
	if host == "index.docker.io" || host == hubAPI {
		return dockerHub
	}
	return host
}

// registryLabel is the metrics' registry label of an upstream: its name when the config names
// it, else "other", so the label has as many values as the config has registries whatever
// clients send.
func (p *Proxy) registryLabel(ns string) string {
	if p.known[ns] {
		return ns
	}
	return registryOther
}

func (p *Proxy) upstream(ns string) (*upstream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if up, ok := p.upstreams.Get(ns); ok {
		return up, nil
	}
	cfg := p.cfg.Registries[ns]
	host := ns
	if ns == dockerHub {
		host = hubAPI
		if c, ok := p.cfg.Registries[hubAPI]; ok && p.cfg.Registries[ns] == (RegistryConfig{}) {
			cfg = c
		}
	}
	scheme := "https"
	if cfg.Insecure {
		scheme = "http"
	}
	base := p.policy.Client()
	tr := base.Transport.(*http.Transport)
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: CA file: %w", ns, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: no certificate in %s", ns, cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	direct := *base
	direct.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	up := &upstream{
		name: ns, base: scheme + "://" + host, hub: ns == dockerHub, cfg: cfg,
		client: base, direct: &direct,
	}
	up.tokens, _ = simplelru.NewLRU[string, cachedToken](tokenEntries, nil)
	p.upstreams.Add(ns, up)
	return up, nil
}

// repo is the repository path at the upstream (library/ added on Docker Hub).
func (up *upstream) repo(name string) string {
	if up.hub && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

func (up *upstream) url(repo, rest string) string {
	return up.base + "/v2/" + repo + rest
}

// do sends one request upstream with the client's credentials, or, when it sent none, with
// the configured static ones (answering one basic or bearer challenge). It returns the
// response and the Authorization it finally sent ("" for none).
func (up *upstream) do(ctx context.Context, c *http.Client, method, u, repo string, h http.Header) (*http.Response, string, error) {
	auth := h.Get("Authorization")
	static := auth == "" && up.cfg.Username != ""
	scope := ""
	if repo != "" {
		scope = "repository:" + repo + ":pull"
	}
	if static {
		auth = up.cachedToken(scope)
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, "", err
		}
		for _, k := range []string{"Accept", "Range", "If-None-Match"} {
			if v := h.Values(k); len(v) > 0 {
				req.Header[k] = v
			}
		}
		req.Header.Set("User-Agent", "pouch-registryproxy")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			// The URL in err may be a redirect's target: storage signed for this client.
			return nil, "", fmt.Errorf("upstream %s: %w", up.name, taskid.RedactError(err, nil))
		}
		if resp.StatusCode != http.StatusUnauthorized || !static || attempt > 0 {
			return resp, auth, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		drain(resp)
		if auth, err = up.answer(ctx, challenge, scope); err != nil {
			return nil, "", err
		}
	}
}

// authorization is the Authorization the mirror sends upstream for a client's request in
// repo: the client's own; when it sent none, one made from the configured credentials (a basic
// header, or a bearer token bought with them, which needs the registry's challenge); "" for an
// anonymous client of a registry without configured credentials.
func (up *upstream) authorization(ctx context.Context, repo, clientAuth string) (string, error) {
	if clientAuth != "" || up.cfg.Username == "" {
		return clientAuth, nil
	}
	if auth := up.cachedToken("repository:" + repo + ":pull"); auth != "" {
		return auth, nil
	}
	resp, auth, err := up.do(ctx, up.direct, http.MethodGet, up.base+"/v2/", repo, nil)
	if err != nil {
		return "", err
	}
	drain(resp)
	return auth, nil
}

func (up *upstream) cachedToken(scope string) string {
	up.mu.Lock()
	defer up.mu.Unlock()
	if t, ok := up.tokens.Get(scope); ok && time.Now().Before(t.expires) {
		return t.auth
	}
	return ""
}

// answer meets a challenge with the static credentials.
func (up *upstream) answer(ctx context.Context, challenge, scope string) (string, error) {
	scheme, params := parseChallenge(challenge)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(up.cfg.Username+":"+up.cfg.Password))
	switch strings.ToLower(scheme) {
	case "basic":
		up.mu.Lock()
		up.tokens.Add(scope, cachedToken{auth: basic, expires: time.Now().Add(time.Hour)})
		up.mu.Unlock()
		return basic, nil
	case "bearer":
	default:
		return "", fmt.Errorf("upstream %s: unsupported auth challenge %q", up.name, challenge)
	}
	realm, err := url.Parse(params["realm"])
	if err != nil || realm.Scheme != "https" && realm.Scheme != "http" {
		return "", fmt.Errorf("upstream %s: bad token realm %q", up.name, params["realm"])
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", basic)
	resp, err := up.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("upstream %s: token: %w", up.name, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("upstream %s: token server answered %s", up.name, resp.Status)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return "", fmt.Errorf("upstream %s: token: %w", up.name, err)
	}
	t := tok.Token
	if t == "" {
		t = tok.AccessToken
	}
	ttl := time.Duration(tok.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	auth := "Bearer " + t
	up.mu.Lock()
	up.tokens.Add(scope, cachedToken{auth: auth, expires: time.Now().Add(ttl * 9 / 10)})
	up.mu.Unlock()
	return auth, nil
}

// authKey identifies a client's credentials in cache keys without keeping them.
func authKey(auth string) string {
	if auth == "" {
		return ""
	}
	s := sha256.Sum256([]byte(auth))
	return hex.EncodeToString(s[:])
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// parseChallenge reads one WWW-Authenticate value with containerd's parser and returns its
// scheme ("basic", "bearer", or "" for any other) and parameters (realm, service, scope...).
func parseChallenge(h string) (scheme string, params map[string]string) {
	cs := auth.ParseAuthHeader(http.Header{"Www-Authenticate": {h}})
	if len(cs) == 0 {
		return "", map[string]string{}
	}
	switch cs[0].Scheme {
	case auth.BasicAuth:
		scheme = "basic"
	case auth.BearerAuth:
		scheme = "bearer"
	}
	return scheme, cs[0].Parameters
}
