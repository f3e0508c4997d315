package registryproxy

import "net/http/httptest"

// UpstreamURL is the upstream URL the proxy would use for path with ?ns=ns.
func UpstreamURL(p *Proxy, ns, path string) string {
	r := httptest.NewRequest("GET", path+"?ns="+ns, nil)
	rt, status, _, _ := parseRoute(r.URL.EscapedPath())
	if status != 0 {
		return ""
	}
	up, _, _, _ := p.resolveUpstream(r)
	if up == nil {
		return ""
	}
	return up.url(up.repo(rt.name), "/manifests/"+rt.ref)
}

// Upstreams is how many upstream clients the proxy holds.
func Upstreams(p *Proxy) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upstreams.Len()
}

// UpstreamBound is the most upstream clients the proxy holds.
const UpstreamBound = upstreamEntries
