package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// containerdConfig is Debian containerd 1.6's configuration (version 2) with its CRI plugin, every
// path it writes under dir so that nothing of the system's containerd is touched.
//
// What this machine needs, found by hand (issue 14): restrict_oom_score_adj, or runc refuses the
// sandbox's oom_score_adj of -998 ("can't get final child's PID from pipe"). disable_apparmor
// keeps containerd from loading a profile into the host's kernel; netns_mounts_under_state_dir
// keeps the pods' network namespaces out of /var/run/netns; the runc root keeps runc's state out
// of /run/containerd/runc.
func containerdConfig(dir, sandboxImage string) string {
	c := filepath.Join(dir, "containerd")
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = %[5]q

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[7]q
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %[8]q
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[9]q
    conf_dir = %[10]q
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[11]q
`,
		filepath.Join(c, "root"), filepath.Join(c, "state"),
		filepath.Join(dir, "containerd.sock"), filepath.Join(dir, "containerd.sock.ttrpc"), filepath.Join(dir, "containerd-debug.sock"),
		filepath.Join(c, "opt"), sandboxImage, filepath.Join(c, "runc"),
		CNIBinDir, filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "certs.d"))
}

// cniConflist is the pod network: one bridge on the host holding the gateway address, addresses
// from host-local IPAM in subnet. No IP masquerade and no portmap plugin, so CNI writes no
// iptables rule: the pods of these tests talk only to the host (a host-network dfdaemon, the
// test), never beyond it.
func cniConflist(dir string, s Subnets) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %[1]q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %[2]q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %[3]q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %[4]q
      }
    }
  ]
}
`, NetworkName, s.Bridge, s.Pods.String(), filepath.Join(dir, "cni", "ipam"))
}

// kubeletConfig is the KubeletConfiguration. The settings this machine needs (issue 14): it runs
// cgroup v1 (failCgroupV1: false), without per-QoS cgroups and so without enforcing node
// allocatable (an empty list, not left out: left out it defaults to ["pods"]), and swap is
// tolerated. The kubelet serves only on loopback; its API answers nobody (no client CA, no
// webhook), which is fine since the API server refuses to proxy to a loopback node IP anyway.
// The eviction thresholds are low so a well-filled disk does not taint the node.
func kubeletConfig(dir string, port, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
address: 127.0.0.1
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
podLogsDir: %[4]s
volumePluginDir: %[5]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, filepath.Join(dir, "containerd.sock"), port, healthzPort, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "kubelet", "volume-plugins"))
}

// writeHostsToml makes containerd pull images of registry host (host:port) from it over plain
// HTTP: the hosts directory (config_path) entry a plain-HTTP registry needs.
func writeHostsToml(hostsDir, host string) error {
	if strings.ContainsAny(host, "/\\") || host == "" || host == "." || host == ".." {
		return fmt.Errorf("registry host %q: want host:port", host)
	}
	d := filepath.Join(hostsDir, host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(hostsToml(host)), 0o644)
}

func hostsToml(host string) string {
	return fmt.Sprintf("server = %[1]q\n\n[host.%[1]q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+host)
}
