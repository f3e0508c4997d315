// Package node brings up a real single-node Kubernetes on loopback for tests: Debian's etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler built from the Go module proxy
// (deploy/k8s/build-kube.sh), a private Debian containerd 1.6 with its CRI plugin, runc and the
// standard CNI plugins, and a kubelet — each a child process with its log in its own file, each
// waited for until it answers. [Node.Stop] tears everything down (pods, processes, mounts, the
// CNI bridge, iptables chains the kubelet added) and [Node.Leftovers] says what, if anything,
// is still on the machine afterwards.
//
// Everything the node writes lives in one private work directory, except what the kubelet
// and containerd 1.6 cannot be told to put elsewhere (/var/log/containers links, CNI's cache
// under /var/lib/cni, shim sockets under /run/containerd), which Stop removes for its own pods.
//
// It is test infrastructure: one node at a time per machine (the bridge and subnets are fixed),
// root only, nothing listening beyond 127.0.0.1.
package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
)

// Where Debian installs what the node runs besides the Kubernetes binaries.
const (
	EtcdBin       = "/usr/bin/etcd"       // etcd-server
	ContainerdBin = "/usr/bin/containerd" // containerd
	CNIBinDir     = "/usr/lib/cni"        // containernetworking-plugins
)

// The Kubernetes binaries Options.BinDir must hold.
var kubeBinaries = []string{APIServer, ControllerManager, Scheduler, Kubelet}

// NodeName is the name the kubelet registers.
const NodeName = "pouch-node"

// NetworkName is the CNI network's name; CNI's cache files start with it.
const NetworkName = "pouch-k8s"

// Subnets are the node's private address ranges and bridge. The defaults are chosen to collide
// with nothing on a test machine, and Start checks that they do not.
type Subnets struct {
	Pods     netip.Prefix // addresses of pods, on the bridge
	Services netip.Prefix // Service cluster IPs (nothing routes them: there is no kube-proxy)
	Bridge   string       // the Linux bridge CNI creates
}

// DefaultSubnets are the subnets Start uses when Options.Subnets is zero.
var DefaultSubnets = Subnets{
	Pods:     netip.MustParsePrefix("10.217.0.0/24"),
	Services: netip.MustParsePrefix("10.217.1.0/24"),
	Bridge:   "pouchk8s0",
}

// Options configures Start.
type Options struct {
	BinDir  string  // kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
	LogDir  string  // one <component>.log per component; kept after Stop
	Subnets Subnets // zero: DefaultSubnets
	// Logf reports progress (t.Logf); nil is silent.
	Logf func(format string, args ...any)
}

// Node is a running single-node cluster.
type Node struct {
	Dir      string // private work directory, removed by Stop
	HostsDir string // containerd's registry hosts directory (config_path)
	Subnets  Subnets
	// APIServer is the API server's URL; Kubeconfig a file holding it, the CA and an admin
	// token (system:masters), for clients such as helm.
	APIServer  string
	Kubeconfig string
	REST       *rest.Config
	Client     kubernetes.Interface
	// ContainerdSocket is the private containerd's socket (CRI and containerd API).
	ContainerdSocket string
	// SandboxImage is the image every pod's sandbox runs, held by a registry of the node's own.
	SandboxImage string

	// Durations says how long each component took to answer.
	Durations map[string]time.Duration

	logDir   string
	logf     func(string, ...any)
	procs    []*proc
	registry *registry.Registry
	before   hostState
	stopped  bool
	ports    ports
	pki      pki
}

// Missing says what this machine lacks to run a node (root, a Debian package, a Kubernetes
// binary in binDir, and what to install), or "" when nothing is missing.
func Missing(binDir string) string {
	if os.Geteuid() != 0 {
		return "a Kubernetes node needs root"
	}
	for _, need := range []struct{ path, pkg string }{
		{EtcdBin, "etcd-server"}, {ContainerdBin, "containerd"}, {"/usr/sbin/runc", "runc"},
		{filepath.Join(CNIBinDir, "bridge"), "containernetworking-plugins"},
		{filepath.Join(CNIBinDir, "host-local"), "containernetworking-plugins"},
		{filepath.Join(CNIBinDir, "loopback"), "containernetworking-plugins"},
		{"/usr/sbin/ip", "iproute2"}, {image.BusyboxPath, "busybox-static"},
	} {
		if _, err := os.Stat(need.path); err != nil {
			return fmt.Sprintf("%s is missing: apt-get install %s", need.path, need.pkg)
		}
	}
	for _, b := range kubeBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Sprintf("%s is missing in %q: deploy/k8s/build-kube.sh builds it", b, binDir)
		}
	}
	return ""
}

// Start brings the node up: it returns once every component answers and the kubelet has
// registered the node (which may not be Ready yet: see [Node.WaitReady]). On failure it tears
// down what it started and the error names the component, with the tail of its log.
func Start(ctx context.Context, opts Options) (n *Node, err error) {
	if why := Missing(opts.BinDir); why != "" {
		return nil, errors.New(why)
	}
	if opts.Subnets == (Subnets{}) {
		opts.Subnets = DefaultSubnets
	}
	if err := checkSubnets(opts.Subnets); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, err
	}
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "pouch-k8s-")
	if err != nil {
		return nil, err
	}
	n = &Node{
		Dir: dir, HostsDir: filepath.Join(dir, "certs.d"), Subnets: opts.Subnets,
		ContainerdSocket: filepath.Join(dir, "containerd.sock"),
		logDir:           opts.LogDir, logf: opts.Logf, Durations: map[string]time.Duration{},
	}
	if n.logf == nil {
		n.logf = func(string, ...any) {}
	}
	n.before = snapshotHost()
	defer func() {
		if err != nil {
			if serr := n.Stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("tearing down after the failure: %w", serr))
			}
			n = nil
		}
	}()
	for _, d := range []string{"pki", "etcd", "cni/net.d", "cni/ipam", "certs.d", "kubelet", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return n, err
		}
	}
	steps := []struct {
		name string
		run  func(context.Context, string) error
	}{
		{"sandbox image", n.startSandboxRegistry},
		{Etcd, n.startEtcd},
		{APIServer, n.startAPIServer},
		{ControllerManager, n.startControllerManager},
		{Scheduler, n.startScheduler},
		{Containerd, n.startContainerd},
		{Kubelet, n.startKubelet},
	}
	if err := n.writePKI(); err != nil {
		return n, err
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.run(ctx, opts.BinDir); err != nil {
			return n, err
		}
		n.Durations[s.name] = time.Since(t0)
		n.logf("%s up in %v", s.name, n.Durations[s.name].Round(time.Millisecond))
	}
	return n, nil
}

// WaitReady waits until the node's Ready condition is True and it carries no NoSchedule taint,
// so pods get scheduled on it.
func (n *Node) WaitReady(ctx context.Context) error {
	return n.waitFor(ctx, Kubelet, "node "+NodeName+" Ready and schedulable", func(ctx context.Context) error {
		node, err := n.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, taint := range node.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoSchedule {
				return fmt.Errorf("taint %s: %w", taint.Key, errNotYet)
			}
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s: %s", c.Status, c.Reason, c.Message)
			}
		}
		return fmt.Errorf("no Ready condition: %w", errNotYet)
	})
}

// AllowRegistry makes containerd pull images of the plain-HTTP registry host (host:port)
// directly from it, through an entry in the hosts directory. A chart that writes its own
// hosts.toml for the same host replaces it; RemoveAll(HostsDir/host) makes containerd fall back
// to HostsDir/_default.
func (n *Node) AllowRegistry(host string) error { return writeHostsToml(n.HostsDir, host) }

// ForgetRegistry removes the hosts directory entry AllowRegistry wrote for host, and leaves one
// written by someone else (a chart's init container) alone.
func (n *Node) ForgetRegistry(host string) error {
	path := filepath.Join(n.HostsDir, host, "hosts.toml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || string(data) != hostsToml(host) {
		return err
	}
	return os.RemoveAll(filepath.Dir(path))
}

// startSandboxRegistry serves the sandbox ("pause") image from an embedded registry of the
// node's own: every pod's sandbox runs it, and the CRI plugin pulls it on the first pod.
func (n *Node) startSandboxRegistry(ctx context.Context, _ string) error {
	img, err := image.Pause()
	if err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	if n.registry, err = registry.Start(ctx, registry.Options{}); err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	if err := img.Push(ctx, n.registry.URL, "pouch-k8s/pause", "1", "", ""); err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	n.SandboxImage = n.registry.Host + "/pouch-k8s/pause:1"
	return n.AllowRegistry(n.registry.Host)
}

// freePorts returns k distinct free TCP ports on loopback. A port can be taken between this
// call and its use; on this single-tenant test machine that has not been seen.
func freePorts(k int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// checkSubnets refuses subnets that overlap an address or route of this machine, and a bridge
// that already exists (another node running, or one left by a killed test: `ip link del` it).
func checkSubnets(s Subnets) error {
	if _, err := net.InterfaceByName(s.Bridge); err == nil {
		return fmt.Errorf("bridge %s already exists: another node runs, or a killed test left it (ip link del %s)", s.Bridge, s.Bridge)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return err
	}
	var taken []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			taken = append(taken, p.Masked())
		}
	}
	routes, err := os.ReadFile("/proc/net/route")
	if err == nil {
		taken = append(taken, parseRoutes(string(routes))...)
	}
	for _, mine := range []netip.Prefix{s.Pods, s.Services} {
		for _, t := range taken {
			if t.Bits() > 0 && mine.Overlaps(t) {
				return fmt.Errorf("subnet %s overlaps %s on this machine: choose other Subnets", mine, t)
			}
		}
	}
	return nil
}

// parseRoutes reads the destinations of /proc/net/route (hex, little-endian), default routes
// left out.
func parseRoutes(table string) []netip.Prefix {
	var out []netip.Prefix
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		ip := netip.AddrFrom4([4]byte{byte(dst), byte(dst >> 8), byte(dst >> 16), byte(dst >> 24)})
		bits := 0
		for m := mask; m != 0; m >>= 1 {
			bits += int(m & 1)
		}
		out = append(out, netip.PrefixFrom(ip, bits).Masked())
	}
	return out
}

// httpGetOK is a check that GETs url with client and wants 200 and a body starting with want.
func httpGetOK(client *http.Client, url, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b [256]byte
		k, _ := resp.Body.Read(b[:])
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b[:k]), want) {
			return fmt.Errorf("GET %s: %s %q", url, resp.Status, b[:k])
		}
		return nil
	}
}
