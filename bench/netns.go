package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The --netns network. Every bench host is in netnsSubnet, which the run refuses to use when
// anything else on the machine routes a part of it:
//
//	bridge pbr<pid>        10.213.0.1/16, in the root namespace: the origin and the supernode
//	namespace pb<pid>n<i>  node i: lo, and veth pb<pid>c<i> with nodeAddr(i)/16
//	veth pb<pid>h<i>       its peer in the root namespace, a port of the bridge
//
// <pid> is dfbench's process id, so that leftovers of a run that was killed can be told from a
// live run's. There is no default route in the namespaces: a node reaches the bench hosts on the
// bridge and nothing else (the bridge switches at layer 2; no forwarding or NAT is involved).
//
// Caps: node i's upload is a tbf on the egress of pb<pid>c<i> (inside its namespace), its
// download a tbf on the egress of pb<pid>h<i> (towards it). The supernode and the origin, in the
// root namespace, keep their own caps (--upload-rate, OriginRate).
const (
	netnsSubnet = "10.213.0.0/16"
	netnsHost   = "10.213.0.1" // the bridge's address
	// NetnsMaxNodes is the largest Config.Nodes with Netns: a Linux bridge has at most 1024
	// ports. Node i's address is 10.213.(1+i/250).(2+i%250).
	NetnsMaxNodes = 1000
	netnsLatency  = "50ms" // tbf queue: what may wait behind a cap
)

var (
	netnsNSRe   = regexp.MustCompile(`^pb([0-9]+)n[0-9]+$`)
	netnsLinkRe = regexp.MustCompile(`^pb(?:r([0-9]+)|([0-9]+)[hc][0-9]+)$`)
)

// nodeAddr is node i's address in netnsSubnet.
func nodeAddr(i int) string { return fmt.Sprintf("10.213.%d.%d", 1+i/250, 2+i%250) }

// netnsNet is the network of one --netns run. A nil *netnsNet is the loopback harness: its
// methods then return what runPhase uses without --netns.
type netnsNet struct {
	ip, tc string // the iproute2 binaries
	pid    int
	bridge string
	nodes  int
	lock   *os.File // flock held for the run: one --netns run at a time on the machine
}

func (n *netnsNet) ns(i int) string       { return fmt.Sprintf("pb%dn%d", n.pid, i) }
func (n *netnsNet) hostVeth(i int) string { return fmt.Sprintf("pb%dh%d", n.pid, i) }
func (n *netnsNet) nodeVeth(i int) string { return fmt.Sprintf("pb%dc%d", n.pid, i) }

// setupNetns builds the network for nodes nodes, with every node's upload capped at up and its
// download at down (bytes/s). It first removes what runs that were killed left behind. On error
// it removes what it built; on success the caller must call close, also when ctx is cancelled.
// wait: wait for a run that holds the machine-wide lock rather than fail.
func setupNetns(ctx context.Context, nodes int, up, down int64, wait bool) (*netnsNet, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("bench: --netns needs root (network namespaces, veth, tc)")
	}
	if nodes < 1 || nodes > NetnsMaxNodes {
		return nil, fmt.Errorf("bench: --netns supports 1 to %d nodes, not %d", NetnsMaxNodes, nodes)
	}
	if err := checkNoProxy(); err != nil {
		return nil, err
	}
	n := &netnsNet{pid: os.Getpid(), nodes: nodes}
	n.bridge = fmt.Sprintf("pbr%d", n.pid)
	var err error
	for _, b := range []struct {
		name string
		dst  *string
	}{{"ip", &n.ip}, {"tc", &n.tc}} {
		if *b.dst, err = exec.LookPath(b.name); err != nil {
			return nil, fmt.Errorf("bench: --netns needs iproute2 (%s): %w", b.name, err)
		}
	}
	if n.lock, err = lockNetns(wait); err != nil {
		return nil, err
	}
	// Under the lock no other --netns run is live, so names with our pid are a dead process's.
	if err := n.cleanStale(); err != nil {
		n.lock.Close()
		return nil, err
	}
	if err := n.checkSubnetFree(); err != nil {
		n.lock.Close()
		return nil, err
	}
	if err := n.build(ctx, up, down); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *netnsNet) build(ctx context.Context, up, down int64) error {
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", netnsHost + "/16", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := n.run(ctx, n.ip, args...); err != nil {
			return err
		}
	}
	return parallel(n.nodes, 8, func(i int) error {
		ns, h, c := n.ns(i), n.hostVeth(i), n.nodeVeth(i)
		for _, cmd := range [][]string{
			{n.ip, "netns", "add", ns},
			{n.ip, "link", "add", h, "type", "veth", "peer", "name", c, "netns", ns},
			{n.ip, "link", "set", h, "master", n.bridge, "up"},
			{n.ip, "-n", ns, "addr", "add", nodeAddr(i) + "/16", "dev", c},
			{n.ip, "-n", ns, "link", "set", "lo", "up"},
			{n.ip, "-n", ns, "link", "set", c, "up"},
			append([]string{n.tc, "-n", ns, "qdisc", "replace", "dev", c, "root"}, tbf(up)...),
			append([]string{n.tc, "qdisc", "replace", "dev", h, "root"}, tbf(down)...),
		} {
			if err := n.run(ctx, cmd[0], cmd[1:]...); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
}

// tbf is a token bucket at rate bytes/s: a burst of 10 ms (at least 32 KiB) and at most
// netnsLatency of queue behind it.
func tbf(rate int64) []string {
	return []string{"tbf", "rate", strconv.FormatInt(8*rate, 10) + "bit",
		"burst", strconv.FormatInt(max(rate/100, 32<<10), 10), "latency", netnsLatency}
}

// close removes every namespace and link of the run and releases the lock. It does not use the
// run's context, so that it also runs once that is cancelled.
func (n *netnsNet) close() error {
	if n == nil {
		return nil
	}
	err := n.remove(n.pid)
	n.lock.Close()
	return err
}

// remove deletes the namespaces and links named with pid. Deleting the root-side veth takes its
// peer along synchronously (deleting a namespace would free it asynchronously).
func (n *netnsNet) remove(pid int) error {
	nss, links, err := n.list()
	if err != nil {
		return err
	}
	var veths, bridges []string
	for _, l := range links {
		switch {
		case l.pid != pid:
		case l.bridge:
			bridges = append(bridges, l.name)
		default:
			veths = append(veths, l.name)
		}
	}
	var owned []string
	for _, ns := range nss {
		if ns.pid == pid {
			owned = append(owned, ns.name)
		}
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	del := func(names []string, cmd ...string) {
		parallel(len(names), 8, func(i int) error {
			if err := n.run(context.Background(), n.ip, append(slices.Clone(cmd), names[i])...); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	// Processes left in the namespaces (a killed dfbench's daemons) would keep them alive.
	for _, ns := range owned {
		out, _ := n.output(n.ip, "netns", "pids", ns)
		for _, f := range strings.Fields(out) {
			if p, err := strconv.Atoi(f); err == nil && p > 0 {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}
	del(veths, "link", "del")
	del(owned, "netns", "del")
	del(bridges, "link", "del")
	return errors.Join(errs...)
}

// cleanStale removes the namespaces and links of --netns runs whose process is gone (or has our
// pid, which under the lock cannot be a live run).
func (n *netnsNet) cleanStale() error {
	nss, links, err := n.list()
	if err != nil {
		return err
	}
	pids := map[int]bool{}
	for _, x := range append(nss, links...) {
		if x.pid == n.pid || !pidAlive(x.pid) {
			pids[x.pid] = true
		}
	}
	var errs []error
	for pid := range pids {
		if err := n.remove(pid); err != nil {
			errs = append(errs, fmt.Errorf("bench: removing what dfbench pid %d left behind: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

type netnsName struct {
	name   string
	pid    int
	bridge bool
}

// list returns the namespaces and links (root namespace) that follow the --netns naming.
func (n *netnsNet) list() (nss, links []netnsName, err error) {
	out, err := n.output(n.ip, "netns", "list")
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if m := netnsNSRe.FindStringSubmatch(f[0]); m != nil {
			pid, _ := strconv.Atoi(m[1])
			nss = append(nss, netnsName{name: f[0], pid: pid})
		}
	}
	if out, err = n.output(n.ip, "-o", "link", "show"); err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		// "12: pb123h0@if2: <...>"
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if m := netnsLinkRe.FindStringSubmatch(name); m != nil {
			pid, _ := strconv.Atoi(m[1] + m[2])
			links = append(links, netnsName{name: name, pid: pid, bridge: m[1] != ""})
		}
	}
	return nss, links, nil
}

// checkSubnetFree refuses a machine on which a route or an address of the root namespace lies in
// netnsSubnet: the bench's traffic could leave through it. Broader routes (10.0.0.0/8) are
// fine: the bridge's /16 is more specific.
func (n *netnsNet) checkSubnetFree() error {
	out, err := n.output(n.ip, "-o", "-4", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	subnet := netip.MustParsePrefix(netnsSubnet)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains([]string{"unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat", "anycast"}, f[0]) {
			f = f[1:]
		}
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			a, aerr := netip.ParseAddr(f[0])
			if aerr != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Bits() >= subnet.Bits() && subnet.Contains(p.Addr()) {
			return fmt.Errorf("bench: --netns uses %s, but this machine already routes %s (%q); remove it, or run without --netns", netnsSubnet, p, strings.TrimSpace(line))
		}
	}
	return nil
}

// checkNoProxy refuses HTTP proxy variables that would send dfbench's scrapes and the daemons'
// API calls for the bench hosts to a proxy (loopback is exempt from them; netnsSubnet is not).
func checkNoProxy() error {
	for _, v := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"} {
		if os.Getenv(v) == "" {
			continue
		}
		for _, np := range []string{"NO_PROXY", "no_proxy"} {
			for _, e := range strings.Split(os.Getenv(np), ",") {
				if e = strings.TrimSpace(e); e == netnsSubnet || e == "*" {
					return nil
				}
			}
		}
		return fmt.Errorf("bench: --netns: %s is set and NO_PROXY does not hold %s: the bench hosts' traffic would go to the proxy; unset it or add %s to NO_PROXY", v, netnsSubnet, netnsSubnet)
	}
	return nil
}

// lockNetns takes the machine-wide --netns lock (released by the kernel if dfbench dies),
// waiting for it or not.
func lockNetns(wait bool) (*os.File, error) {
	dir := "/run/lock"
	if _, err := os.Stat(dir); err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "pouch-dfbench-netns.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX | syscall.LOCK_NB
	if wait {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: another dfbench --netns run holds %s (%w): they would share %s", path, err, netnsSubnet)
	}
	return f, nil
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (n *netnsNet) run(ctx context.Context, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bench: %s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (n *netnsNet) output(bin string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("bench: %s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// originAddr is where the origin listens.
func (n *netnsNet) originAddr() string {
	if n == nil {
		return "127.0.0.1:0"
	}
	return netnsHost + ":0"
}

// listenArgs are the address flags of the supernode (node -1) or of node i's dfdaemon.
func (n *netnsNet) listenArgs(node int) []string {
	switch {
	case n == nil:
		return []string{"--listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-networks", "127.0.0.0/8"}
	case node < 0:
		return []string{"--listen", netnsHost + ":0", "--p2p-listen", "/ip4/" + netnsHost + "/tcp/0", "--allow-networks", netnsSubnet}
	default:
		a := nodeAddr(node)
		return []string{"--listen", a + ":0", "--p2p-listen", "/ip4/" + a + "/tcp/0", "--allow-networks", netnsSubnet + ",127.0.0.0/8"}
	}
}

// command returns the program and arguments that run path with args on node i: in its
// namespace with --netns, else as is.
func (n *netnsNet) command(node int, path string, args ...string) (string, []string) {
	if n == nil {
		return path, args
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return n.ip, append([]string{"netns", "exec", n.ns(node), path}, args...)
}

// Netns is the --netns network for tests outside bench that need hosts that do not share a
// loopback (e2e's multi-host test): node i is a network namespace at NodeAddr(i) on a bridge,
// the test's own (root) namespace at BridgeAddr. Every node's upload and download is capped at
// the rate given to SetupNetns. Unlike dfbench --netns, setting up waits for another run that
// holds the machine-wide lock.
type Netns struct{ n *netnsNet }

// SetupNetns builds the network for nodes nodes (root and iproute2 required). The caller must
// Close it.
func SetupNetns(ctx context.Context, nodes int, rate int64) (*Netns, error) {
	n, err := setupNetns(ctx, nodes, rate, rate, true)
	if err != nil {
		return nil, err
	}
	return &Netns{n: n}, nil
}

// Close removes the namespaces and links, killing what still runs in them.
func (n *Netns) Close() error { return n.n.close() }

// NodeAddr is node i's IPv4 address.
func (n *Netns) NodeAddr(i int) string { return nodeAddr(i) }

// BridgeAddr is the root namespace's IPv4 address on the bridge, where the nodes reach it.
func (n *Netns) BridgeAddr() string { return netnsHost }

// Command returns the program and arguments that run path with args in node i's namespace.
func (n *Netns) Command(i int, path string, args ...string) (string, []string) {
	return n.n.command(i, path, args...)
}
