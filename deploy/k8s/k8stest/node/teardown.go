package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Paths the kubelet and containerd 1.6 write to whatever their configuration says.
const (
	containerLogLinks = "/var/log/containers" // the kubelet's links to each container's log
	cniResults        = "/var/lib/cni/results"
	ipForward         = "/proc/sys/net/ipv4/ip_forward" // set to 1 by the bridge plugin (isGateway)
)

// hostPaths are the directories outside the work directory that the node creates when they are
// missing, seen on this machine: the kubelet's device-plugin socket directory (a constant in
// the kubelet), its log links, CNI's cache, and the cgroup every pod's containers go under
// (/k8s.io, containerd's CRI namespace, as there are no per-QoS cgroups). Stop removes those
// that did not exist before Start.
func hostPaths() []string {
	paths := []string{"/var/lib/kubelet", containerLogLinks, "/var/lib/cni"}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/k8s.io")
	return append(paths, cgroups...)
}

// hostState is what Start found on the machine, so Stop can put back what the node changed.
type hostState struct {
	ipForward string
	iptables  map[iptablesLine]bool
	existed   map[string]bool // hostPaths that existed
}

func snapshotHost() hostState {
	s := hostState{iptables: map[iptablesLine]bool{}, existed: map[string]bool{}}
	if b, err := os.ReadFile(ipForward); err == nil {
		s.ipForward = string(b)
	}
	for _, l := range iptablesSave() {
		s.iptables[l] = true
	}
	for _, p := range hostPaths() {
		if _, err := os.Stat(p); err == nil {
			s.existed[p] = true
		}
	}
	return s
}

// createdPaths lists the hostPaths that exist now and did not before Start.
func (n *Node) createdPaths() []string {
	var out []string
	for _, p := range hostPaths() {
		if _, err := os.Stat(p); err == nil && !n.before.existed[p] {
			out = append(out, p)
		}
	}
	return out
}

// cri connects to the private containerd's CRI runtime service.
func (n *Node) cri() (criapi.RuntimeServiceClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+n.ContainerdSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return criapi.NewRuntimeServiceClient(conn), conn, nil
}

// Stop tears the node down and leaves the machine as Start found it: the kubelet first (so it
// recreates nothing), then every pod sandbox through the CRI (containerd kills the containers
// and CNI removes each pod's veth and frees its address), the control plane and containerd,
// then whatever is left: processes running from the work directory, mounts under it, the CNI
// bridge, the iptables chains and rules the kubelet added, ip_forward, the kubelet's log links,
// CNI's cache files, and the work directory itself. The component logs stay in the log dir.
// It is safe to call twice.
func (n *Node) Stop() error {
	if n.stopped {
		return nil
	}
	n.stopped = true
	var errs []error
	for _, p := range slices.Backward(n.procs) {
		if p.name == Containerd {
			if err := n.removePods(); err != nil {
				errs = append(errs, fmt.Errorf("remove pods: %w", err))
			}
		}
		grace := 10 * time.Second
		if p.name == Containerd {
			grace = 15 * time.Second
		}
		if err := p.stop(grace); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	for _, pid := range n.processes() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	n.unmountAll()
	if _, err := net.InterfaceByName(n.Subnets.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", n.Subnets.Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", n.Subnets.Bridge, err, out))
		}
	}
	errs = append(errs, n.removeIptables())
	if cur, err := os.ReadFile(ipForward); err == nil && n.before.ipForward != "" && string(cur) != n.before.ipForward {
		errs = append(errs, os.WriteFile(ipForward, []byte(n.before.ipForward), 0o644))
	}
	for _, link := range n.logLinks() {
		errs = append(errs, os.Remove(link))
	}
	for _, f := range cniCache() {
		errs = append(errs, os.Remove(f))
	}
	for _, p := range n.createdPaths() {
		if strings.HasPrefix(p, "/sys/fs/cgroup/") {
			errs = append(errs, os.Remove(p)) // a cgroup goes with rmdir, once it holds no process
		} else {
			errs = append(errs, os.RemoveAll(p))
		}
	}
	if n.registry != nil {
		errs = append(errs, n.registry.Close())
	}
	errs = append(errs, os.RemoveAll(n.Dir))
	return errors.Join(errs...)
}

// removePods stops and removes every pod sandbox, which removes its containers too.
func (n *Node) removePods() error {
	rt, conn, err := n.cri()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &criapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &criapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox of %s/%s: %w", s.Metadata.GetNamespace(), s.Metadata.GetName(), err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &criapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox of %s/%s: %w", s.Metadata.GetNamespace(), s.Metadata.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists what of the node is still on the machine: processes, mounts, the bridge,
// iptables chains and rules, ip_forward, log links, CNI cache files, the work directory. After
// Stop it must be empty.
func (n *Node) Leftovers() []string {
	var left []string
	for _, pid := range n.processes() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
	}
	for _, m := range n.mounts() {
		left = append(left, "mount "+m)
	}
	if _, err := net.InterfaceByName(n.Subnets.Bridge); err == nil {
		left = append(left, "bridge "+n.Subnets.Bridge)
	}
	for _, r := range n.addedIptables() {
		left = append(left, r.String())
	}
	if cur, err := os.ReadFile(ipForward); err == nil && n.before.ipForward != "" && string(cur) != n.before.ipForward {
		left = append(left, fmt.Sprintf("%s is %q, was %q", ipForward, strings.TrimSpace(string(cur)), strings.TrimSpace(n.before.ipForward)))
	}
	for _, l := range n.logLinks() {
		left = append(left, "log link "+l)
	}
	for _, f := range cniCache() {
		left = append(left, "CNI cache "+f)
	}
	for _, p := range n.createdPaths() {
		left = append(left, "created "+p)
	}
	if _, err := os.Stat(n.Dir); err == nil {
		left = append(left, "work directory "+n.Dir)
	}
	return left
}

// processes lists the processes that belong to the node: run with the work directory in their
// command line (the components, containerd's shims) or with their root or working directory in
// it (the containers).
func (n *Node) processes() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		mine := strings.Contains(string(cmdline), n.Dir)
		for _, link := range []string{"root", "cwd"} {
			if target, err := os.Readlink(filepath.Join("/proc", e.Name(), link)); err == nil && inDir(target, n.Dir) {
				mine = true
			}
		}
		if mine {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mounts lists the mount points under the work directory, deepest last.
func (n *Node) mounts() []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && inDir(f[4], n.Dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// unmountAll unmounts everything under the work directory: the containers' root filesystems,
// the sandboxes' shm and network namespaces, the kubelet's volumes and the bind mount it makes
// of its own root directory. Mounts can be stacked, so it goes round until none is left.
func (n *Node) unmountAll() {
	for range 5 {
		ms := n.mounts()
		if len(ms) == 0 {
			return
		}
		for _, m := range slices.Backward(ms) {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
}

// logLinks lists the kubelet's links in /var/log/containers that point into the work directory.
func (n *Node) logLinks() []string {
	entries, _ := os.ReadDir(containerLogLinks)
	var out []string
	for _, e := range entries {
		p := filepath.Join(containerLogLinks, e.Name())
		if target, err := os.Readlink(p); err == nil && inDir(target, n.Dir) {
			out = append(out, p)
		}
	}
	return out
}

// cniCache lists CNI's cached results for the node's network (<network>-<container>-<ifname>).
func cniCache() []string {
	out, _ := filepath.Glob(filepath.Join(cniResults, NetworkName+"-*"))
	return out
}

func inDir(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}
