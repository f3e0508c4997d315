package supernode

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// A parent's loopback and link-local addresses reach it only from its own host: a peer on
// another host that dials one reaches itself or nothing, stalls, and goes back to the origin.
// So the supernode remembers which host each peer called from and hands such addresses only to
// peers on that same host; a parent left with no address a child can dial is not handed out,
// and counted (pouch_supernode_unreachable_parents_total).

// selfHost stands for the supernode's own host among callers' hosts.
var selfHost = netip.IPv6Loopback()

// callerHost names the host an API request came from: selfHost for the supernode's own
// (loopback, or the very address the connection was made to), else the remote IP. Peers behind
// one NAT share an address and count as one host: they may be handed each other's loopback
// addresses, which fail as they would have without the filter.
func callerHost(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() {
		return selfHost
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if l, err := netip.ParseAddrPort(la.String()); err == nil && l.Addr().Unmap() == ip {
			return selfHost
		}
	}
	return ip
}

// reachableAddrs is what of a parent's addresses a child can dial: all of them when both called
// from one host, else the routable ones only.
func reachableAddrs(addrs []string, parent, child netip.Addr) []string {
	if parent.IsValid() && parent == child {
		return addrs
	}
	return peer.Routable(addrs)
}

// offer appends a parent to out with the addresses child can reach it at, or counts and logs
// (once per parent, through warned) that it has none. The caller holds s.mu.
func (s *Supernode) offer(out []snapi.Peer, p snapi.Peer, parent, child netip.Addr, warned *bool) []snapi.Peer {
	addrs := reachableAddrs(p.Addrs, parent, child)
	if len(addrs) == 0 {
		s.metrics.unreachableParents.Inc()
		if !*warned {
			*warned = true
			s.log.Warn("a parent announced only loopback or link-local addresses, which peers on other hosts cannot reach: it is not handed to them (set its --p2p-listen or --advertise-addrs)",
				zap.String("parent", p.ID), zap.Strings("addrs", p.Addrs), zap.String("child_host", child.String()))
		}
		return out
	}
	p.Addrs = addrs
	return append(out, p)
}

// checkSeedReachable refuses a supernode whose API other hosts can call while its seed
// announces only loopback or link-local addresses: no peer on another host could fetch from it.
func checkSeedReachable(api net.Addr, seed []string) error {
	ap, err := netip.ParseAddrPort(api.String())
	if err != nil || ap.Addr().Unmap().IsLoopback() || len(peer.Routable(seed)) > 0 {
		return nil
	}
	return fmt.Errorf("supernode: the API listens on %s, for other hosts, but the seed's only libp2p addresses are loopback or link-local (%s), which no other host can reach: set --p2p-listen to a reachable address (the default is %s) or --advertise-addrs to the address other hosts reach this one at",
		api, strings.Join(seed, ","), DefaultP2PListen)
}
