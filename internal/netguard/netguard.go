// Package netguard keeps back-to-source and preheat fetches away from addresses a remote user
// must not reach through Pouch (SSRF): loopback, link-local (cloud metadata), unspecified,
// multicast and reserved addresses, the shared address space (100.64.0.0/10) and the cloud
// metadata addresses outside link-local are refused unless allow-listed; private ranges are
// allowed unless denied. An IPv6 address that carries an IPv4 address (IPv4-mapped,
// IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo) is refused when the IPv4 address it
// carries is. The check runs when a connection is dialled, after DNS, so redirects and DNS tricks
// are covered too.
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
var ErrForbidden = errors.New("destination not allowed by the SSRF policy")

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

// Check reports whether addr may be dialled: addr itself and every IPv4 address it carries
// must each be allowed (in Allow, or neither in Deny nor refused by default). Allow-listing an
// IPv6 prefix that carries IPv4 addresses (a NAT64 prefix) does not allow the IPv4 addresses
// inside: allow those themselves.
func (p Policy) Check(addr netip.Addr) error {
	addr = addr.Unmap()
	if err := p.checkOne(addr); err != nil {
		return err
	}
	for _, e := range embedded(addr) {
		if err := p.checkOne(e.v4); err != nil {
			return fmt.Errorf("%s carries %s (%s): %w", addr, e.v4, e.form, err)
		}
	}
	return nil
}

func (p Policy) checkOne(addr netip.Addr) error {
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
	const allow = " (allow it with --allow-networks)"
	switch {
	case addr.IsLoopback():
		return fmt.Errorf("%w: %s is a loopback address"+allow, ErrForbidden, addr)
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is link-local (cloud metadata lives there)"+allow, ErrForbidden, addr)
	case addr.IsUnspecified():
		return fmt.Errorf("%w: %s is unspecified", ErrForbidden, addr)
	case addr.IsMulticast():
		return fmt.Errorf("%w: %s is multicast", ErrForbidden, addr)
	}
	for _, r := range refused {
		if r.net.Contains(addr) {
			return fmt.Errorf("%w: %s is in %s, %s"+allow, ErrForbidden, addr, r.net, r.what)
		}
	}
	return nil
}

// refused are the networks refused by default besides loopback, link-local, unspecified and
// multicast: where cloud metadata and platform services answer outside link-local, and ranges
// no origin lives in.
var refused = []struct {
	net  netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("100.64.0.0/10"), "the shared address space (carrier-grade NAT; Alibaba Cloud's metadata is 100.100.100.200)"},
	{netip.MustParsePrefix("168.63.129.16/32"), "Azure's wire server and DNS"},
	{netip.MustParsePrefix("192.0.0.192/32"), "Oracle Cloud's metadata"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (and the broadcast address)"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "AWS's IPv6 instance metadata"},
	{netip.MustParsePrefix("fd20:ce::254/128"), "Google Cloud's IPv6 metadata"},
}

// carried is an IPv4 address inside an IPv6 one.
type carried struct {
	v4   netip.Addr
	form string
}

// embedded returns the IPv4 addresses an IPv6 address carries, by the translation and tunnel
// forms that can deliver a connection to them. For the local-use NAT64 prefix, whose operator
// picks where the IPv4 address sits (RFC 6052), every position the address fits is returned.
func embedded(a netip.Addr) []carried {
	if !a.Is6() {
		return nil
	}
	b := a.As16()
	v4 := func(i, j, k, l int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]}) }
	zero := func(from, to int) bool {
		for _, x := range b[from:to] {
			if x != 0 {
				return false
			}
		}
		return true
	}
	switch {
	case zero(0, 12): // ::a.b.c.d (:: and ::1 are refused as themselves first)
		return []carried{{v4(12, 13, 14, 15), "IPv4-compatible"}}
	case zero(0, 8) && b[8] == 0xff && b[9] == 0xff && zero(10, 12): // ::ffff:0:a.b.c.d
		return []carried{{v4(12, 13, 14, 15), "IPv4-translated"}}
	case nat64.Contains(a):
		return []carried{{v4(12, 13, 14, 15), "NAT64"}}
	case nat64Local.Contains(a):
		// RFC 6052: the octet at bits 64-71 is zero and the suffix after the IPv4 address is
		// zero; an all-zero IPv4 reading is the empty suffix of a shorter layout.
		var out []carried
		for _, c := range []struct {
			addr       netip.Addr
			suffixFrom int
			form       string
		}{
			{v4(6, 7, 9, 10), 11, "local-use NAT64 /48"},
			{v4(7, 9, 10, 11), 12, "local-use NAT64 /56"},
			{v4(9, 10, 11, 12), 13, "local-use NAT64 /64"},
			{v4(12, 13, 14, 15), 16, "local-use NAT64 /96"},
		} {
			if b[8] == 0 && zero(c.suffixFrom, 16) && c.addr != netip.IPv4Unspecified() {
				out = append(out, carried{c.addr, c.form})
			}
		}
		return out
	case sixToFour.Contains(a):
		return []carried{{v4(2, 3, 4, 5), "6to4"}}
	case teredo.Contains(a):
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return []carried{{v4(4, 5, 6, 7), "Teredo server"}, {client, "Teredo client"}}
	}
	return nil
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	teredo     = netip.MustParsePrefix("2001::/32")
)

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
