// Package runtime is Pouch's thin container runtime: a client of containerd that pulls images
// through the registry mirror named in a containerd hosts directory (hosts.toml), runs them with
// containerd and runc, lists and removes containers and images, and writes the hosts.toml that
// points containerd at a mirror.
//
// It owns no daemon and no storage of its own: every image, snapshot, container and task lives
// in containerd, in one containerd namespace (Config.Namespace). It must not import the
// distribution components (dfdaemon, supernode); the mirror is reached only through hosts.toml,
// exactly as containerd itself and ctr reach it, so what works for pouch works for any client.
package runtime
