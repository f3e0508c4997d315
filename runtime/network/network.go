// Package network gives containers their network through CNI, with the standard plugins
// (Debian's containernetworking-plugins): a network namespace per container, pinned to a file
// named after the container so it outlives the container's processes and survives restarts, and
// in it either only loopback ("none") or loopback plus a veth on a NAT bridge with ports
// published from the host ("bridge"). "host" shares the host's namespace and needs nothing.
//
// It owns the plugins' configuration (generated, never read from /etc/cni), their state
// (host-local's address leases, libcni's cache) and the namespace files, all under one state
// directory, and it refuses a bridge range that overlaps a route of the host. It knows nothing
// of containerd: the runtime puts the namespace's path in the container's OCI spec.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Mode is how a container is networked, as `--network` names it.
type Mode string

// The modes.
const (
	Bridge Mode = "bridge"
	Host   Mode = "host"
	None   Mode = "none"
)

// ParseMode checks a --network value ("" is Bridge).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Bridge:
		return Bridge, nil
	case Host, None:
		return Mode(s), nil
	}
	return "", fmt.Errorf("%w: %q (want bridge, host or none)", ErrUnknownNetwork, s)
}

// Defaults for Config.
const (
	DefaultBridge = "pouch0"
	DefaultSubnet = "10.88.0.0/16"
)

// DefaultPluginDirs are where the CNI plugin binaries are looked for: Debian's package first.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Sentinel errors.
var (
	// ErrUnknownNetwork: a --network value that is not bridge, host or none.
	ErrUnknownNetwork = errors.New("unknown network")
	// ErrSubnetInUse: the bridge range overlaps a route or an address of the host.
	ErrSubnetInUse = errors.New("subnet overlaps a host route")
	// ErrPlugins: the CNI plugins are missing or failed.
	ErrPlugins = errors.New("CNI plugins failed")
	// ErrBadPort: a -p value that cannot be parsed.
	ErrBadPort = errors.New("invalid port mapping")
)

// Config is the bridge network's shape and where the package keeps its state.
type Config struct {
	// StateDir holds the namespace files, address leases and libcni's cache.
	StateDir string `yaml:"stateDir"`
	// PluginDirs are searched for the CNI plugins; empty means DefaultPluginDirs.
	PluginDirs []string `yaml:"pluginDirs"`
	// Bridge is the host bridge's name; empty means DefaultBridge.
	Bridge string `yaml:"bridge"`
	// Subnet is the bridge network's IPv4 range (the bridge takes its first address); empty
	// means DefaultSubnet.
	Subnet string `yaml:"subnet"`
}

func (c Config) withDefaults() Config {
	if len(c.PluginDirs) == 0 {
		c.PluginDirs = DefaultPluginDirs
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	return c
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.StateDir == "" {
		return errors.New("network: no state directory")
	}
	if len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/ \t\n:") {
		return fmt.Errorf("network: bridge name %q: want at most 15 characters, no '/', ':' or spaces", c.Bridge)
	}
	p, err := netip.ParsePrefix(c.Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Masked() != p {
		return fmt.Errorf("network: subnet %q: want an IPv4 range such as %s (at most /30, host bits zero)", c.Subnet, DefaultSubnet)
	}
	return nil
}

// Manager sets up and tears down containers' networks.
type Manager struct {
	cfg    Config
	subnet netip.Prefix
	cni    *libcni.CNIConfig
}

// New checks cfg and returns a manager; nothing is created until Setup.
func New(cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Manager{
		cfg:    cfg,
		subnet: netip.MustParsePrefix(cfg.Subnet),
		cni:    libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.StateDir, "cache"), nil),
	}, nil
}

// Info describes a network for `pouch network ls`.
type Info struct {
	Name   string `json:"Name"`
	Driver string `json:"Driver"`
	Subnet string `json:"Subnet,omitempty"`
	Bridge string `json:"Bridge,omitempty"`
}

// Networks lists the networks a container can join.
func (m *Manager) Networks() []Info {
	return []Info{
		{Name: string(Bridge), Driver: "bridge", Subnet: m.cfg.Subnet, Bridge: m.cfg.Bridge},
		{Name: string(Host), Driver: "host"},
		{Name: string(None), Driver: "null"},
	}
}

// Attachment is what Setup made for a container.
type Attachment struct {
	// NetNS is the namespace file to put in the OCI spec; "" for Host.
	NetNS string
	// IP is the container's address on the bridge; "" unless Bridge.
	IP string
}

// NetNSPath is where container id's namespace is pinned.
func (m *Manager) NetNSPath(id string) string { return filepath.Join(m.cfg.StateDir, "netns", id) }

// Setup creates container id's namespace and attaches it to mode's network, publishing ports
// (Bridge only). On failure nothing is left behind.
func (m *Manager) Setup(ctx context.Context, id string, mode Mode, ports []PortMapping) (att Attachment, err error) {
	if mode == Host {
		if len(ports) > 0 {
			return Attachment{}, fmt.Errorf("%w: -p publishes ports of a container's own network; with --network host its ports are the host's already", ErrBadPort)
		}
		return Attachment{}, nil
	}
	if mode == None && len(ports) > 0 {
		return Attachment{}, fmt.Errorf("%w: -p needs --network bridge (the container has no network with --network none)", ErrBadPort)
	}
	if mode == Bridge {
		if err := m.CheckSubnet(); err != nil {
			return Attachment{}, err
		}
	}
	path := m.NetNSPath(id)
	if err := newNetNS(path); err != nil {
		return Attachment{}, fmt.Errorf("network namespace of %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = m.Teardown(context.WithoutCancel(ctx), id, mode, ports)
		}
	}()
	att = Attachment{NetNS: path}
	for _, list := range m.lists(mode) {
		res, err := m.cni.AddNetworkList(ctx, list, m.runtimeConf(id, path, ports))
		if err != nil {
			return Attachment{}, m.pluginError("attach "+id+" to "+list.Name, err)
		}
		if list.Name == m.bridgeNetName() {
			att.IP = firstIP(res)
		}
	}
	return att, nil
}

// Teardown detaches container id from mode's network and removes its namespace. It succeeds for
// a container whose namespace is already gone (after a reboot or a crash), so `rm` can always
// clean up.
func (m *Manager) Teardown(ctx context.Context, id string, mode Mode, ports []PortMapping) error {
	if mode == Host {
		return nil
	}
	path := m.NetNSPath(id)
	nsPath := path
	if !isNetNS(path) {
		nsPath = "" // plugins release leases and rules without entering a namespace that is gone
	}
	var errs []error
	lists := m.lists(mode)
	slices.Reverse(lists)
	for _, list := range lists {
		if err := m.cni.DelNetworkList(ctx, list, m.runtimeConf(id, nsPath, ports)); err != nil {
			errs = append(errs, m.pluginError("detach "+id+" from "+list.Name, err))
		}
	}
	if err := removeNetNS(path); err != nil {
		errs = append(errs, fmt.Errorf("network namespace of %s: %w", id, err))
	}
	return errors.Join(errs...)
}

// Attached reports whether container id's namespace file still holds a namespace (false after
// a reboot, when the runtime must set the network up again).
func (m *Manager) Attached(id string) bool { return isNetNS(m.NetNSPath(id)) }

func (m *Manager) runtimeConf(id, netns string, ports []PortMapping) *libcni.RuntimeConf {
	rc := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"}
	if len(ports) > 0 {
		pm := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			e := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": p.Protocol}
			if p.HostIP != "" {
				e["hostIP"] = p.HostIP
			}
			pm = append(pm, e)
		}
		rc.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rc
}

func (m *Manager) pluginError(what string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "failed to find plugin") {
		return fmt.Errorf("%w: %s: %w; install containernetworking-plugins (looked in %s) or run with --network host or none",
			ErrPlugins, what, err, strings.Join(m.cfg.PluginDirs, ", "))
	}
	return fmt.Errorf("%w: %s: %w", ErrPlugins, what, err)
}

func (m *Manager) bridgeNetName() string { return "pouch-" + m.cfg.Bridge }

// lists returns the CNI network lists a container of mode joins, loopback first.
func (m *Manager) lists(mode Mode) []*libcni.NetworkConfigList {
	lo := mustList(map[string]any{
		"cniVersion": "1.0.0", "name": "pouch-loopback",
		"plugins": []any{map[string]any{"type": "loopback"}},
	})
	if mode != Bridge {
		return []*libcni.NetworkConfigList{lo}
	}
	gw := m.subnet.Addr().Next()
	br := mustList(map[string]any{
		"cniVersion": "1.0.0",
		"name":       m.bridgeNetName(),
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": m.cfg.Bridge,
				"isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]any{{{"subnet": m.cfg.Subnet, "gateway": gw.String()}}},
					"routes":  []map[string]any{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(m.cfg.StateDir, "ipam"),
				},
			},
			// Published ports: DNAT from the host (loopback included: snat and route_localnet).
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "snat": true},
			// Accepts the container's traffic in FORWARD on hosts whose policy drops it.
			map[string]any{"type": "firewall"},
		},
	})
	return []*libcni.NetworkConfigList{lo, br}
}

func mustList(v map[string]any) *libcni.NetworkConfigList {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	l, err := libcni.ConfListFromBytes(b)
	if err != nil {
		panic(fmt.Sprintf("network: generated config does not parse: %v\n%s", err, b))
	}
	return l
}

// firstIP is the first IPv4 address of a CNI result ("" when it has none).
func firstIP(res types.Result) string {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return ""
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.String()
		}
	}
	return ""
}

// CheckSubnet refuses a bridge range that overlaps a route or an address of the host, other
// than the bridge's own.
func (m *Manager) CheckSubnet() error {
	routes, err := hostRoutes()
	if err != nil {
		return fmt.Errorf("network: read the host's routes: %w", err)
	}
	for _, r := range routes {
		if r.iface == m.cfg.Bridge || r.prefix.Bits() == 0 {
			continue
		}
		if r.prefix.Overlaps(m.subnet) {
			return fmt.Errorf("%w: %s overlaps the host's route to %s on %s; choose another range with --subnet", ErrSubnetInUse, m.subnet, r.prefix, r.iface)
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("network: list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Name == m.cfg.Bridge {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if ok && m.subnet.Contains(ip.Unmap()) {
				return fmt.Errorf("%w: %s holds %s, the address of %s; choose another range with --subnet", ErrSubnetInUse, m.subnet, ip.Unmap(), ifc.Name)
			}
		}
	}
	return nil
}

type route struct {
	iface  string
	prefix netip.Prefix
}

// hostRoutes reads the main table's IPv4 routes from /proc/net/route.
func hostRoutes() ([]route, error) {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, err
	}
	var out []route
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		// The kernel prints them in host (little-endian) byte order.
		d := [4]byte{byte(dst), byte(dst >> 8), byte(dst >> 16), byte(dst >> 24)}
		mk := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
		ones, _ := mk.Size()
		out = append(out, route{iface: f[0], prefix: netip.PrefixFrom(netip.AddrFrom4(d), ones).Masked()})
	}
	return out, nil
}
