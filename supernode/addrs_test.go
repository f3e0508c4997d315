package supernode

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/scheduler"
)

func TestReachableAddrs(t *testing.T) {
	t.Parallel()
	all := []string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1", "/ip6/fe80::1/tcp/1", "/ip4/169.254.3.4/tcp/1", "/dns4/localhost/tcp/1",
		"/ip4/10.0.0.2/tcp/65002", "/ip6/2001:db8::2/tcp/65002", "/dns4/node2.example/tcp/65002"}
	routable := []string{"/ip4/10.0.0.2/tcp/65002", "/ip6/2001:db8::2/tcp/65002", "/dns4/node2.example/tcp/65002"}
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	for _, c := range []struct {
		name          string
		parent, child netip.Addr
		want          []string
	}{
		{"same host", a, a, all},
		{"both on the supernode's host", selfHost, selfHost, all},
		{"another host", a, b, routable},
		{"the supernode's own to a remote child", selfHost, b, routable},
		{"a remote parent to a child on the supernode's host", a, selfHost, routable},
		{"parent host unknown", netip.Addr{}, netip.Addr{}, routable},
	} {
		if got := reachableAddrs(all, c.parent, c.child); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := reachableAddrs([]string{"/ip4/127.0.0.1/tcp/1", "/ip6/fe80::1/tcp/1"}, a, b); len(got) != 0 {
		t.Errorf("loopback and link-local only, to another host: %v, want none", got)
	}
}

func TestCallerHost(t *testing.T) {
	t.Parallel()
	local := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, c := range []struct {
		remote string
		local  net.Addr
		want   netip.Addr
	}{
		{"127.0.0.1:40000", local("127.0.0.1:8002"), selfHost},
		{"[::1]:40000", local("[::1]:8002"), selfHost},
		{"10.0.0.1:40000", local("10.0.0.1:8002"), selfHost}, // this host, through its own address
		{"10.0.0.2:40000", local("10.0.0.1:8002"), netip.MustParseAddr("10.0.0.2")},
		{"[::ffff:10.0.0.2]:40000", local("[::ffff:10.0.0.1]:8002"), netip.MustParseAddr("10.0.0.2")},
		{"10.0.0.2:40000", nil, netip.MustParseAddr("10.0.0.2")},
		{"garbage", nil, netip.Addr{}},
	} {
		r, _ := http.NewRequest(http.MethodPost, "http://sn/", nil)
		r.RemoteAddr = c.remote
		if c.local != nil {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, c.local))
		}
		if got := callerHost(r); got != c.want {
			t.Errorf("from %s to %v: %v, want %v", c.remote, c.local, got, c.want)
		}
	}
}

// The schedule a child receives holds each parent with the addresses the child can reach; a
// parent with none (loopback only, on another host) is left out and counted.
func TestScheduleOffersParentsAddressesReachableFromTheChild(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Allow: loopback}) // the seed listens on loopback only (the library default)
	hostA, hostB := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	s.mu.Lock()
	s.touchPeer(snapi.Peer{ID: "A", Addrs: []string{"/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/65002"}}, hostA)
	s.touchPeer(snapi.Peer{ID: "B", Addrs: []string{"/ip4/127.0.0.1/tcp/2", "/ip6/fe80::1/tcp/2"}}, hostB)
	s.mu.Unlock()
	d := scheduler.Decision{Parents: []scheduler.PeerID{s.seedID(), "A", "B"}}
	offered := func(child netip.Addr) map[string][]string {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := map[string][]string{}
		for _, p := range s.schedule(d, &task{}, child).Parents {
			out[p.ID] = p.Addrs
		}
		return out
	}
	// Gathering takes s.mu (the gauges).
	unreachable := func() float64 { return s.families(t).Sum("pouch_supernode_unreachable_parents_total", nil) }

	// A child on B's host: A's routable address, all of B's; the seed has no address for it.
	got := offered(hostB)
	if len(got) != 2 || !slices.Equal(got["A"], []string{"/ip4/10.0.0.2/tcp/65002"}) || len(got["B"]) != 2 {
		t.Errorf("child on B's host was offered %v", got)
	}
	if n := unreachable(); n != 1 {
		t.Errorf("unreachable parents %v after the seed was left out, want 1", n)
	}
	// A child on the supernode's host: the seed's loopback addresses and A's routable one; B is out.
	got = offered(selfHost)
	seed := got[string(s.seedID())]
	if len(got) != 2 || len(seed) == 0 || !strings.HasPrefix(seed[0], "/ip4/127.0.0.1/") || len(got["A"]) != 1 {
		t.Errorf("child on the supernode's host was offered %v", got)
	}
	if n := unreachable(); n != 2 {
		t.Errorf("unreachable parents %v after B was left out, want 2", n)
	}
}

func TestSupernodeRefusesASeedOnlyLoopbackReaches(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Listen: "0.0.0.0:0", P2PListen: "/ip4/127.0.0.1/tcp/0", DataDir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "--p2p-listen") || !strings.Contains(err.Error(), "--advertise-addrs") {
		t.Fatalf("API on every interface, seed on loopback: %v, want an error naming --p2p-listen and --advertise-addrs", err)
	}
	for _, cfg := range []Config{
		{Listen: "127.0.0.1:0", P2PListen: "/ip4/127.0.0.1/tcp/0"},
		{Listen: "0.0.0.0:0", P2PListen: "/ip4/127.0.0.1/tcp/0", AdvertiseAddrs: []string{"/ip4/192.0.2.5/tcp/8003"}},
	} {
		cfg.DataDir = t.TempDir()
		s, err := New(cfg, nil)
		if err != nil {
			t.Errorf("%+v: %v", cfg, err)
			continue
		}
		s.Close()
	}
}
