// Package netguard keeps back-to-source and preheat fetches away from addresses a remote user
// must not reach through Pouch (SSRF): loopback, link-local (cloud metadata) and unspecified
// addresses are refused unless allow-listed; private ranges are allowed unless denied. The check
// runs when a connection is dialled, after DNS, so redirects and DNS tricks are covered too.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrForbidden is returned (wrapped) for a destination the policy refuses.
var ErrForbidden = errors.New("destination address not allowed")

// Policy says which destinations are allowed. The zero Policy is the secure default.
type Policy struct {
	Allow []netip.Prefix // always allowed, even when otherwise refused
	Deny  []netip.Prefix // always refused, unless also in Allow
}

// ParsePrefixes reads a comma-separated CIDR list such as "127.0.0.0/8,10.0.0.0/8".
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("netguard: %q is not a CIDR: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check reports whether addr may be dialled.
func (p Policy) Check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, a := range p.Allow {
		if a.Contains(addr) {
			return nil
		}
	}
	for _, d := range p.Deny {
		if d.Contains(addr) {
			return fmt.Errorf("%w: %s is in a denied network (%s)", ErrForbidden, addr, d)
		}
	}
	switch {
	case addr.IsLoopback():
		return fmt.Errorf("%w: %s is a loopback address (allow it with --allow-networks)", ErrForbidden, addr)
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is link-local (cloud metadata lives there)", ErrForbidden, addr)
	case addr.IsUnspecified():
		return fmt.Errorf("%w: %s is unspecified", ErrForbidden, addr)
	case addr.IsMulticast():
		return fmt.Errorf("%w: %s is multicast", ErrForbidden, addr)
	}
	return nil
}

// Control is a net.Dialer Control hook enforcing the policy on the resolved address.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrForbidden, address)
	}
	return p.Check(ap.Addr())
}

// Client returns an HTTP client for fetching from origins under the policy. It has no overall
// timeout (a multi-gigabyte body takes as long as it takes) but bounds connecting and waiting
// for response headers.
func (p Policy) Client() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.Control}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // a proxy would hide the real destination from the check
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.ResponseHeaderTimeout = 30 * time.Second
	t.MaxIdleConnsPerHost = 16
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
}
