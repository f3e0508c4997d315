package supernode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/scheduler"
)

// Config is everything a supernode needs.
type Config struct {
	Listen string // HTTP API, e.g. 127.0.0.1:8002 (port 0 picks one)
	// MetricsListen is a second listener for /metrics, /healthz and /readyz only, plain HTTP
	// even when the API serves TLS. Empty: none; the API serves them either way.
	MetricsListen string
	DataDir       string // seed pieces, task index, identity
	P2PListen     string // the seed's libp2p address (library default: loopback, any port; the command's: 0.0.0.0:8003)
	// AdvertiseAddrs are the multiaddrs the seed is handed out at instead of its listen
	// addresses (NAT, a container's published port). Empty: the listen addresses.
	AdvertiseAddrs []string
	UploadRate     int64          // the seed's upload cap in bytes/s; 0 = none
	Secret         string         // cluster secret: libp2p private network and API membership; empty = open
	AdminToken     string         // bearer token for admin views; empty = loopback clients only
	TLSCert        string         // PEM certificate (chain) of the API; with TLSKey it serves https
	TLSKey         string         // PEM private key of TLSCert
	Allow          []netip.Prefix // origins allowed despite the SSRF policy
	Deny           []netip.Prefix
	QueryFilter    []string // URL query parameters that do not change a task
	// RegistryInsecure lists the registries (host[:port]) a preheat job reaches over plain HTTP.
	RegistryInsecure []string
	// PeerTTL is how long a peer that neither syncs nor heartbeats stays scheduled.
	PeerTTL time.Duration
	// SyncWaitMax caps how long a sync long-poll is held.
	SyncWaitMax time.Duration
	// FailedTaskTTL is how long a task whose seed failed before storing anything (a dead URL,
	// a refused origin) is remembered; MaxFailedTasks bounds how many are, oldest forgotten
	// first. Anyone who can register can create such tasks.
	FailedTaskTTL  time.Duration
	MaxFailedTasks int
	Scheduler      scheduler.Config
	// TakeoverGrace is how long a seed started by a registration that announces held pieces
	// (its peers moved here from a supernode that died, or this one restarted) waits before it
	// fetches from the origin, so that the task's other peers announce theirs: every peer
	// notices within a sync (about a second).
	TakeoverGrace time.Duration
	// GC bounds the seed's disk, as the dfdaemon's GC does a node's.
	GC GCConfig
	// SpoolMax caps the bytes that origins without Content-Length may take on disk while they
	// are spooled, all together (default 10 GiB); such an origin beyond it is refused.
	SpoolMax int64
}

// GCConfig bounds the disk the seed's store may use; the same policy as the dfdaemon's.
type GCConfig struct {
	High     int64         // start evicting above this many bytes; 0 = no quota
	Low      int64         // evict down to this many bytes (default 80% of High)
	TTL      time.Duration // evict tasks unused for this long; 0 = keep
	Interval time.Duration
}

// DefaultSpoolMax is Config.SpoolMax's default.
const DefaultSpoolMax = 10 << 30

// DefaultP2PListen is the supernode command's --p2p-listen: every interface, a fixed port next
// to the API's 8002 that firewalls can open.
const DefaultP2PListen = "/ip4/0.0.0.0/tcp/8003"

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8002"
	}
	if c.P2PListen == "" {
		c.P2PListen = "/ip4/127.0.0.1/tcp/0"
	}
	if c.QueryFilter == nil {
		c.QueryFilter = taskid.DefaultFilter
	}
	if c.PeerTTL == 0 {
		c.PeerTTL = 30 * time.Second
	}
	if c.SyncWaitMax == 0 {
		c.SyncWaitMax = 5 * time.Second
	}
	if c.FailedTaskTTL == 0 {
		c.FailedTaskTTL = 10 * time.Minute
	}
	if c.MaxFailedTasks == 0 {
		c.MaxFailedTasks = 1024
	}
	if c.TakeoverGrace == 0 {
		c.TakeoverGrace = 2 * time.Second
	}
	if c.GC.Interval == 0 {
		c.GC.Interval = time.Minute
	}
	if c.GC.High > 0 && c.GC.Low == 0 {
		c.GC.Low = c.GC.High * 8 / 10
	}
	if c.SpoolMax == 0 {
		c.SpoolMax = DefaultSpoolMax
	}
	c.Scheduler = c.Scheduler.WithDefaults()
	return c
}

// Validate reports a config the supernode cannot run with.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("supernode: a data directory is required")
	}
	if c.UploadRate < 0 {
		return fmt.Errorf("supernode: negative upload rate %d", c.UploadRate)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("supernode: TLS needs both a certificate and its key (--tls-cert, --tls-key)")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("supernode: TLS certificate and key: %w", err)
		}
	}
	if c.FailedTaskTTL < 0 || c.MaxFailedTasks < 0 {
		return fmt.Errorf("supernode: negative failedTaskTTL %v or maxFailedTasks %d", c.FailedTaskTTL, c.MaxFailedTasks)
	}
	switch {
	case c.GC.High < 0 || c.GC.Low < 0 || c.GC.TTL < 0 || c.GC.Interval < 0:
		return errors.New("supernode: negative gc watermark, ttl or interval")
	case c.GC.Low > c.GC.High && c.GC.High > 0:
		return errors.New("supernode: gc low watermark above the high one")
	case c.SpoolMax < 0 || c.TakeoverGrace < 0:
		return errors.New("supernode: negative spoolMax or takeoverGrace")
	}
	return c.Scheduler.Validate()
}
