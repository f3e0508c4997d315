package dfdaemon

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	p2p "github.com/pouch-p2p/pouch/internal/peer"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// Config is everything a dfdaemon needs.
type Config struct {
	Supernode   string // supernode URLs, comma-separated; empty = origin only
	SupernodeCA string // PEM bundle trusted for https supernodes instead of the system roots
	DataDir     string // pieces, index, identity
	Listen      string // local API (dfget) and registry mirror
	// MetricsListen is a second listener for /metrics, /healthz and /readyz only, plain HTTP
	// (Prometheus on another host; the local API is loopback by default). Empty: none; the
	// local API serves them either way.
	MetricsListen string
	P2PListen     string // libp2p multiaddr (library default: loopback, any port; the command's: 0.0.0.0:65002)
	// AdvertiseAddrs are the multiaddrs announced to the supernodes and other peers instead of
	// the listen addresses (NAT, a container's published port). Empty: the listen addresses.
	AdvertiseAddrs []string
	UploadRate     int64  // bytes/s to all children together; 0 = none
	DownloadRate   int64  // bytes/s from all parents together; 0 = none
	Secret         string // cluster secret: libp2p private network and supernode API membership
	Allow          []netip.Prefix
	Deny           []netip.Prefix
	QueryFilter    []string
	// StallTimeout is how long a download may make no progress over P2P before the daemon
	// fetches the missing pieces from the origin itself.
	StallTimeout time.Duration
	// RequestTimeout bounds the wait for a requested piece to start arriving from a parent.
	RequestTimeout time.Duration
	// Pipeline is how many piece requests are kept waiting at each parent besides the piece
	// arriving from it. Default picker.Pipeline.
	Pipeline int
	// Heartbeat is how often the daemon tells the supernode it is alive; the answer carries
	// new preheat assignments, so it is also how soon a preheat job reaches the node.
	Heartbeat time.Duration
	// AuthTTL is how long an origin's yes to a requester's credentials for private content is
	// reused (see the gate).
	AuthTTL time.Duration
	// PreheatConcurrency is how many preheat downloads run at once, so that warming the
	// cluster does not starve the node's live pulls.
	PreheatConcurrency int
	GC                 GCConfig
	// DHT finds the holders of a task when no supernode answers (dht.go).
	DHT DHTConfig
	// OneShot marks a daemon that lives for one download (dfget without a local dfdaemon): the
	// supernode never counts it among the peers a preheat job warms.
	OneShot bool
}

// GCConfig bounds the disk the piece store may use.
type GCConfig struct {
	High     int64         // start evicting above this many bytes; 0 = no quota
	Low      int64         // evict down to this many bytes
	TTL      time.Duration // evict tasks unused for this long; 0 = keep
	Interval time.Duration
}

// DefaultP2PListen is the dfdaemon command's --p2p-listen: every interface, a fixed port that
// firewalls can open (the supernode's seed uses 8003, the local API 65001).
const DefaultP2PListen = "/ip4/0.0.0.0/tcp/65002"

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:65001"
	}
	if c.P2PListen == "" {
		c.P2PListen = "/ip4/127.0.0.1/tcp/0"
	}
	if c.QueryFilter == nil {
		c.QueryFilter = taskid.DefaultFilter
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 15 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 20 * time.Second
	}
	if c.Pipeline == 0 {
		c.Pipeline = picker.Pipeline
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.AuthTTL == 0 {
		c.AuthTTL = 30 * time.Second
	}
	if c.PreheatConcurrency == 0 {
		c.PreheatConcurrency = 2
	}
	if c.GC.Interval == 0 {
		c.GC.Interval = time.Minute
	}
	if c.GC.High > 0 && c.GC.Low == 0 {
		c.GC.Low = c.GC.High * 8 / 10
	}
	c.DHT = c.DHT.withDefaults()
	return c
}

// Validate reports a config the daemon cannot run with.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("dfdaemon: a data directory is required")
	case c.UploadRate < 0 || c.DownloadRate < 0:
		return errors.New("dfdaemon: rates must not be negative")
	case c.GC.Low > c.GC.High && c.GC.High > 0:
		return errors.New("dfdaemon: gc low watermark above the high one")
	case c.AuthTTL < 0:
		return errors.New("dfdaemon: authTTL must not be negative")
	case c.Pipeline < 1:
		return errors.New("dfdaemon: pipeline must be at least 1")
	case c.PreheatConcurrency < 1:
		return errors.New("dfdaemon: preheat concurrency must be at least 1")
	case c.Heartbeat < 0:
		return errors.New("dfdaemon: heartbeat interval must be positive")
	}
	for _, u := range snapi.URLs(c.Supernode) {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("dfdaemon: supernode %q is not an http:// or https:// URL", u)
		}
	}
	if _, err := snapi.LoadCA(c.SupernodeCA); err != nil {
		return fmt.Errorf("dfdaemon: %w", err)
	}
	return c.DHT.validate()
}

// clearText lists the supernodes reached over plain HTTP on another host: registrations carry
// registry and origin credentials, which would cross the network readable.
func clearText(list string) []string {
	var out []string
	for _, u := range snapi.URLs(list) {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" {
			continue
		}
		if !onThisHost(p) {
			out = append(out, u)
		}
	}
	return out
}

// onThisHost says whether a supernode URL names this host's loopback.
func onThisHost(u *url.URL) bool {
	host := u.Hostname()
	ip, err := netip.ParseAddr(host)
	return (err == nil && ip.Unmap().IsLoopback()) || host == "localhost"
}

// checkAdvertised refuses a daemon that would announce only loopback or link-local addresses
// to a supernode on another host: the supernode could hand them to no other peer, so every
// download on the other hosts would find this node unreachable and the node itself would get
// parents that cannot reach it back. Better to stop at start, naming the flags to set.
func checkAdvertised(supernodes string, addrs []string) error {
	if len(p2p.Routable(addrs)) > 0 {
		return nil
	}
	for _, u := range snapi.URLs(supernodes) {
		if p, err := url.Parse(u); err == nil && !onThisHost(p) {
			return fmt.Errorf("dfdaemon: the supernode %s is on another host, but this node's only libp2p addresses are loopback or link-local (%s), which no other host can reach: set --p2p-listen to a reachable address (the default is %s) or --advertise-addrs to the address other hosts reach this one at", u, strings.Join(addrs, ","), DefaultP2PListen)
		}
	}
	return nil
}
