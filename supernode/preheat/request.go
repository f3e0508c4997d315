package preheat

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"golang.org/x/net/http/httpguts"

	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// ErrBadRequest wraps every reason a request is refused at once (HTTP 400).
var ErrBadRequest = errors.New("bad preheat request")

// MaxHeaders bounds the headers a request may give for its job.
const MaxHeaders = 32

// Normalize checks a request and fills its defaults: the type from the URL's form, scope
// seed, an image's platform (the supernode's own), and the reference in its canonical form
// (docker.io/library/busybox:latest for busybox). It refuses, with ErrBadRequest, what can be
// known to fail without asking the registry: an unparsable reference or URL, an unknown
// platform, and an address the SSRF policy refuses when the URL names one literally. With
// ErrBadRequest it may also wrap netguard.ErrForbidden.
func Normalize(req snapi.PreheatRequest, policy netguard.Policy) (snapi.PreheatRequest, error) {
	bad := func(format string, args ...any) (snapi.PreheatRequest, error) {
		return req, fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
	}
	req.URL = strings.TrimSpace(req.URL)
	if req.URL == "" {
		return bad("url is required: an image reference or an http(s) URL")
	}
	if req.Type == "" {
		req.Type = snapi.PreheatImage
		if strings.HasPrefix(req.URL, "http://") || strings.HasPrefix(req.URL, "https://") {
			req.Type = snapi.PreheatFile
		}
	}
	switch req.Scope {
	case "":
		req.Scope = snapi.ScopeSeed
	case snapi.ScopeSeed, snapi.ScopeAllPeers:
	default:
		return bad("scope %q is neither %q nor %q", req.Scope, snapi.ScopeSeed, snapi.ScopeAllPeers)
	}
	if (req.Username == "") != (req.Password == "") {
		return bad("username and password go together")
	}
	if len(req.Headers) > MaxHeaders {
		return bad("at most %d headers", MaxHeaders)
	}
	for k, v := range req.Headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return bad("header %q is not a valid HTTP header", k)
		}
	}
	var host string
	switch req.Type {
	case snapi.PreheatImage:
		named, err := ParseRef(req.URL)
		if err != nil {
			return bad("%v", err)
		}
		req.URL, host = named.String(), reference.Domain(named)
		p, err := ParsePlatform(req.Platform)
		if err != nil {
			return bad("%v", err)
		}
		req.Platform = platforms.Format(p)
	case snapi.PreheatFile:
		u, err := url.Parse(req.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("url %q must be an absolute http or https URL for type file", req.URL)
		}
		if req.Platform != "" {
			return bad("platform applies to images only")
		}
		if req.Username != "" {
			return bad("username and password apply to images only; give a file's credentials as headers")
		}
		host = u.Host
	default:
		return bad("type %q is neither %q nor %q", req.Type, snapi.PreheatImage, snapi.PreheatFile)
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if err := policy.Check(ip); err != nil {
			return req, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	return req, nil
}

// ParseRef parses an image reference as docker does: busybox is docker.io/library/busybox,
// and a reference without tag or digest means :latest.
func ParseRef(ref string) (reference.Named, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return named, nil
}

// ParsePlatform parses os/arch[/variant]; empty is the supernode's own platform. Unlike
// platforms.Parse, it refuses an operating system or architecture that containerd does not know.
func ParsePlatform(s string) (platforms.Platform, error) {
	if s == "" {
		return platforms.DefaultSpec(), nil
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return p, fmt.Errorf("platform %q: %w", s, err)
	}
	// A single known component parses to itself; an unknown one fails or becomes the other kind.
	if os, err := platforms.Parse(p.OS); err != nil || os.OS != p.OS {
		return p, fmt.Errorf("platform %q: unknown operating system %q", s, p.OS)
	}
	if arch, err := platforms.Parse(p.Architecture); err != nil || arch.Architecture != p.Architecture {
		return p, fmt.Errorf("platform %q: unknown architecture %q", s, p.Architecture)
	}
	return p, nil
}
