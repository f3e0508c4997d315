package peer

import (
	"fmt"
	"math"
	"net/netip"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
)

// Role is what a host is for; its resource limits follow from it.
type Role int

const (
	// RolePeer is a dfdaemon (or dfget's one-shot peer): a child of the few parents the
	// supernode hands it, and a parent of the few children it is handed.
	RolePeer Role = iota
	// RoleSeed is the supernode's seed: a parent of every peer that downloads its tasks, and a
	// child of nobody.
	RoleSeed
)

// Limits bound what the remote peers of a host may hold, each and all together, through
// libp2p's resource manager: a peer beyond its limit gets its new stream or connection refused
// (the downloader takes it as an unreachable parent), while every other peer is still served.
type Limits struct {
	// One remote peer.
	PeerConns      int   // connections; libp2p keeps one per peer, two for a moment after a simultaneous dial
	PeerStreamsIn  int   // streams it opens to us: one per task it pulls from us at once
	PeerStreamsOut int   // streams we open to it: one per task we pull from it at once
	PeerMemory     int64 // what its connections may reserve (yamux receive windows)
	// The whole host.
	ConnsIn, ConnsOut     int
	StreamsIn, StreamsOut int
	Memory                int64
	// ConnsPerIP bounds the connections from one address (an IPv4 /32, an IPv6 /56); loopback
	// is never limited (tests, dfbench, a node's own dfget).
	ConnsPerIP int
}

// yamux lets a stream's receive window grow to 16 MiB as the transfer proves fast, and reserves
// that memory from the connection's scope at half priority: a reservation succeeds only while
// usage stays below about half the limit. Every memory limit is therefore set at twice what the
// windows it must allow take, so that memory never throttles a piece stream: the bounds that
// matter are on streams and connections, and the piece protocol bounds its own messages
// (maxControl, the piece size, a pipeline of a few pieces per parent).
const maxStreamWindow = 16 << 20

// DefaultLimits are the limits of a host of role r. A peer pulls a whole image at once, so up
// to a few dozen tasks from one parent; the seed serves every downloading peer of its tasks,
// thousands, while a dfdaemon serves the few children the supernode gives it.
func DefaultLimits(r Role) Limits {
	l := Limits{
		PeerConns:      4,
		PeerStreamsIn:  64,
		PeerStreamsOut: 64,
		PeerMemory:     2 * 4 * maxStreamWindow, // four streams at full window at once
		ConnsIn:        1024,
		ConnsOut:       1024,
		StreamsIn:      4096,
		StreamsOut:     4096,
		Memory:         2 * 32 * maxStreamWindow, // 1 GiB: a bound on what windows may buffer, not memory taken up front
		ConnsPerIP:     64,
	}
	if r == RoleSeed {
		l.ConnsIn, l.ConnsOut = 8192, 256
		l.StreamsIn, l.StreamsOut = 8192*4, 1024
		// The seed only sends pieces; what it receives are small requests.
		l.Memory = 2 * 64 * maxStreamWindow
	}
	// Every connection is a file descriptor: leave half of them to the store and the HTTP API.
	if fds := openFileLimit(); fds > 0 {
		l.ConnsIn = min(l.ConnsIn, fds/2)
		l.ConnsOut = min(l.ConnsOut, fds/2)
	}
	return l
}

// Validate reports limits a host cannot work with.
func (l Limits) Validate() error {
	for _, v := range []int64{int64(l.PeerConns), int64(l.PeerStreamsIn), int64(l.PeerStreamsOut), l.PeerMemory,
		int64(l.ConnsIn), int64(l.ConnsOut), int64(l.StreamsIn), int64(l.StreamsOut), l.Memory, int64(l.ConnsPerIP)} {
		if v <= 0 {
			return fmt.Errorf("peer: resource limits must be positive: %+v", l)
		}
	}
	return nil
}

// resourceManager builds libp2p's resource manager for l. Scopes Pouch does not limit on their
// own (services, protocols, single streams) are unlimited: the peer and the whole host bound
// them.
func (l Limits) resourceManager() (network.ResourceManager, error) {
	lim := func(v int) rcmgr.LimitVal { return rcmgr.LimitVal(v) }
	conns := l.ConnsIn + l.ConnsOut
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: lim(conns), ConnsInbound: lim(l.ConnsIn), ConnsOutbound: lim(l.ConnsOut),
			Streams: lim(l.StreamsIn + l.StreamsOut), StreamsInbound: lim(l.StreamsIn), StreamsOutbound: lim(l.StreamsOut),
			FD: lim(conns), Memory: rcmgr.LimitVal64(l.Memory),
		},
		// Connections and streams being set up, before the peer or the protocol is known.
		Transient: rcmgr.ResourceLimits{
			Conns: lim(max(64, conns/8)), ConnsInbound: lim(max(64, l.ConnsIn/8)), ConnsOutbound: lim(max(64, l.ConnsOut/8)),
			Streams: lim(max(256, (l.StreamsIn+l.StreamsOut)/8)), StreamsInbound: lim(max(256, l.StreamsIn/8)), StreamsOutbound: lim(max(256, l.StreamsOut/8)),
			FD: lim(max(64, conns/8)), Memory: rcmgr.LimitVal64(l.Memory / 8),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns: lim(l.PeerConns), ConnsInbound: lim(l.PeerConns), ConnsOutbound: lim(l.PeerConns),
			Streams: lim(l.PeerStreamsIn + l.PeerStreamsOut), StreamsInbound: lim(l.PeerStreamsIn), StreamsOutbound: lim(l.PeerStreamsOut),
			FD: lim(l.PeerConns), Memory: rcmgr.LimitVal64(l.PeerMemory),
		},
		Conn:                 rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(l.PeerMemory)},
		Stream:               unlimited,
		ServiceDefault:       unlimited,
		ServicePeerDefault:   unlimited,
		ProtocolDefault:      unlimited,
		ProtocolPeerDefault:  unlimited,
		AllowlistedSystem:    unlimited,
		AllowlistedTransient: unlimited,
	}
	perIP := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: l.ConnsPerIP}}
	perIP6 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: l.ConnsPerIP}}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg.Build(rcmgr.InfiniteLimits)),
		rcmgr.WithLimitPerSubnet(perIP, perIP6),
		rcmgr.WithConnRateLimiters(connRate(l.ConnsPerIP)),
		rcmgr.WithMetricsDisabled())
}

var unlimited = rcmgr.ResourceLimits{
	Streams: rcmgr.Unlimited, StreamsInbound: rcmgr.Unlimited, StreamsOutbound: rcmgr.Unlimited,
	Conns: rcmgr.Unlimited, ConnsInbound: rcmgr.Unlimited, ConnsOutbound: rcmgr.Unlimited,
	FD: rcmgr.Unlimited, Memory: rcmgr.Unlimited64,
}

// connRate bounds how fast one address may open connections: a burst of as many as it may hold,
// then a few a second (libp2p's default, a fifth a second, would stall a CI host starting many
// one-shot dfgets at once); loopback is never limited.
func connRate(burst int) *rate.Limiter {
	every := rate.Limit{RPS: 4, Burst: burst}
	return &rate.Limiter{
		NetworkPrefixLimits: []rate.PrefixLimit{
			{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
			{Prefix: netip.MustParsePrefix("::1/128")},
		},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: every}},
			IPv6SubnetLimits: []rate.SubnetLimit{{PrefixLength: 56, Limit: every}},
			GracePeriod:      time.Minute,
		},
	}
}

// openFileLimit is the process's soft limit on open files, or 0 when unknown.
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > math.MaxInt32 {
		return 0
	}
	return int(r.Cur)
}
