package registryproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// maxManifest bounds a manifest read from an upstream.
const maxManifest = 8 << 20

// manifest is one upstream answer to a manifest request.
type manifest struct {
	status    int
	mediaType string
	digest    string
	length    int64
	header    http.Header // for refusals: WWW-Authenticate and the like
	body      []byte      // nil for a HEAD
}

// serveManifest passes a manifest request through to the upstream, single-flight per
// (upstream, name, reference, credentials, accept), reusing by-digest answers from memory and
// by-tag answers for TagTTL.
func (p *Proxy) serveManifest(w http.ResponseWriter, r *http.Request, up *upstream, rt route) {
	repo := up.repo(rt.name)
	auth := r.Header.Get("Authorization")
	byDigest := strings.Contains(rt.ref, ":")
	accept := strings.Join(r.Header.Values("Accept"), ",")
	key := strings.Join([]string{up.name, repo, rt.ref, authKey(auth)}, "\x00")
	tagKey := key + "\x00" + accept
	head := r.Method == http.MethodHead

	if byDigest {
		if m := p.manifests.get(key); m != nil {
			p.writeManifest(w, r, m)
			return
		}
	} else if p.cfg.TagTTL > 0 {
		if m, ok := p.tags.Get(tagKey); ok && (head || m.body != nil) {
			p.writeManifest(w, r, m)
			return
		}
	}
	v, err, _ := p.flights.Do(r.Method+"\x00"+tagKey, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
		defer cancel()
		return p.fetchManifest(ctx, up, repo, rt.ref, r.Method, r.Header)
	})
	if err != nil {
		if _, ok := err.(*digestError); ok {
			writeError(w, http.StatusBadGateway, CodeManifestInvalid, err.Error(), nil)
			return
		}
		p.upstreamDown(w, up, err)
		return
	}
	m := v.(*manifest)
	if m.status/100 != 2 {
		p.relayRefusal(w, r, up, m.status, m.header, m.body, CodeManifestUnknown, fmt.Sprintf("manifest %s:%s", repo, rt.ref))
		return
	}
	switch {
	case byDigest && m.body != nil:
		p.manifests.put(key, m)
	case !byDigest && p.cfg.TagTTL > 0:
		p.tags.Add(tagKey, m)
		if m.body != nil && m.digest != "" {
			p.manifests.put(strings.Join([]string{up.name, repo, m.digest, authKey(auth)}, "\x00"), m)
		}
	}
	p.writeManifest(w, r, m)
}

// fetchManifest asks the upstream once and checks a by-digest answer against its digest.
func (p *Proxy) fetchManifest(ctx context.Context, up *upstream, repo, ref, method string, h http.Header) (*manifest, error) {
	resp, _, err := up.do(ctx, up.client, method, up.url(repo, "/manifests/"+ref), repo, h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := &manifest{status: resp.StatusCode, mediaType: resp.Header.Get("Content-Type"), digest: resp.Header.Get("Docker-Content-Digest"), length: resp.ContentLength}
	if resp.StatusCode/100 != 2 {
		m.header = resp.Header.Clone()
		if method != http.MethodHead {
			m.body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		}
		return m, nil
	}
	if method == http.MethodHead {
		if m.digest == "" && strings.Contains(ref, ":") {
			m.digest = ref
		}
		return m, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: reading manifest %s:%s: %w", up.name, repo, ref, err)
	}
	if len(body) > maxManifest {
		return nil, fmt.Errorf("upstream %s: manifest %s:%s is larger than %d bytes", up.name, repo, ref, maxManifest)
	}
	m.body, m.length = body, int64(len(body))
	if strings.Contains(ref, ":") {
		want := digest.Digest(ref)
		if want.Algorithm().FromBytes(body) != want {
			return nil, &digestError{fmt.Sprintf("upstream %s sent a manifest for %s@%s that does not match that digest", up.name, repo, ref)}
		}
		m.digest = ref
	} else if m.digest == "" {
		m.digest = digest.FromBytes(body).String()
	}
	return m, nil
}

type digestError struct{ msg string }

func (e *digestError) Error() string { return e.msg }

func (p *Proxy) writeManifest(w http.ResponseWriter, r *http.Request, m *manifest) {
	h := w.Header()
	if m.mediaType != "" {
		h.Set("Content-Type", m.mediaType)
	}
	if m.digest != "" {
		h.Set("Docker-Content-Digest", m.digest)
		h.Set("Etag", `"`+m.digest+`"`)
	}
	if m.length >= 0 {
		h.Set("Content-Length", strconv.FormatInt(m.length, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.body)
	}
}
