// Package peer is the piece exchange between Pouch peers over libp2p: the host (identity, TCP,
// TLS first then Noise, yamux, optional private-network key), the wire protocol, the upload
// server that answers requests from a piece store, and the client side of one parent
// connection. It decides nothing about which pieces to fetch or from whom: the dfdaemon's
// downloader does, and the seed in the supernode reuses the upload server.
package peer

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// HostConfig says how to build a peer's libp2p host.
type HostConfig struct {
	Listen []string // multiaddrs, e.g. /ip4/127.0.0.1/tcp/0
	// Advertise replaces the listen addresses in what the host tells others (the supernode,
	// identify, the DHT): the addresses peers reach it at behind NAT or a container's port
	// mapping. Empty: the listen addresses (0.0.0.0 expanded to every interface's).
	Advertise []string
	KeyFile   string  // the peer's identity, created on first start, so a restart keeps its ID
	Secret    string  // optional cluster pre-shared key: only peers that know it can connect
	Role      Role    // sizes the default limits
	Limits    *Limits // what remote peers may hold; nil = DefaultLimits(Role)
}

// NewHost starts a libp2p host: TCP, TLS first (measured faster here than Noise), yamux.
func NewHost(cfg HostConfig) (host.Host, error) {
	key, err := loadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	advertise, err := parseAddrs(cfg.Advertise)
	if err != nil {
		return nil, err
	}
	limits := DefaultLimits(cfg.Role)
	if cfg.Limits != nil {
		limits = *cfg.Limits
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	rm, err := limits.resourceManager()
	if err != nil {
		return nil, fmt.Errorf("peer: resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		// Streams and connections bounded per peer and in total (limits.go); the host closes it.
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	if len(advertise) > 0 {
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return advertise }))
	}
	if cfg.Secret != "" {
		sum := sha256.Sum256([]byte(cfg.Secret))
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(sum[:])))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close() // the host would have, had it started; closing twice is harmless
		return nil, fmt.Errorf("peer: start libp2p host on %v: %w", listen, err)
	}
	return h, nil
}

// Addrs returns the host's full multiaddrs as strings, for registration with the supernode.
func Addrs(h host.Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// AddrInfo parses a peer ID and its multiaddrs as the supernode hands them out.
func AddrInfo(id string, addrs []string) (peer.AddrInfo, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("peer: bad peer ID %q: %w", id, err)
	}
	info := peer.AddrInfo{ID: pid}
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("peer: bad address %q of %s: %w", s, id, err)
		}
		info.Addrs = append(info.Addrs, a)
	}
	return info, nil
}

// parseAddrs parses advertised multiaddrs; each must name an IP or DNS host and a TCP port.
func parseAddrs(in []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range in {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("peer: advertised address %q is not a multiaddr: %w", s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			return nil, fmt.Errorf("peer: advertised address %q has no /tcp/PORT", s)
		}
		out = append(out, a)
	}
	return out, nil
}

// HostLocal says whether a multiaddr can only be reached from the host that announced it: a
// loopback or link-local IP, or /dns/localhost. Handing one to a peer on another host makes it
// dial itself or nothing, stall, and go back to the origin.
func HostLocal(addr string) bool {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return false
	}
	for _, p := range []int{ma.P_IP4, ma.P_IP6} {
		if v, err := a.ValueForProtocol(p); err == nil {
			ip, err := netip.ParseAddr(v)
			return err == nil && (ip.Unmap().IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())
		}
	}
	for _, p := range []int{ma.P_DNS, ma.P_DNS4, ma.P_DNS6} {
		if v, err := a.ValueForProtocol(p); err == nil {
			return v == "localhost" || strings.HasSuffix(v, ".localhost")
		}
	}
	return false
}

// Routable returns the addresses of addrs that are not HostLocal.
func Routable(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if !HostLocal(a) {
			out = append(out, a)
		}
	}
	return out
}

func loadOrCreateKey(path string) (crypto.PrivKey, error) {
	if path == "" {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		return k, err
	}
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("peer: identity %s is not a libp2p key: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("peer: read identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	data, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("peer: write identity: %w", err)
	}
	return k, nil
}
