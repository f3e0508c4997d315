// Package runtime is Pouch's thin container runtime: a client of containerd that pulls images
// through the registry mirror named in a containerd hosts directory (hosts.toml), with the
// registry credentials `pouch login` stored; creates containers from them with docker's options
// (environment, mounts and named volumes, limits, user, terminal, network); runs them in the
// foreground or in the background; and stops, restarts, execs into, inspects and removes them.
// It also writes the hosts.toml that points containerd at a mirror.
//
// containerd does the work: images, snapshots, containers and tasks live in it, in one
// namespace (Config.Namespace), and what pouch knows beyond them (restart policy, ports, exit
// code, the state a user asked for) is in the containers' labels. Under Config.Root pouch keeps
// only data: logs, generated /etc files, named volumes (runtime/volume) and the CNI network's
// state (runtime/network). A detached container has two helper processes, both the pouch binary
// (see HelperMain): its logger, started by containerd's shim (runtime/logs), and its
// supervisor, which records exits and applies the restart policy. There is no pouch daemon.
//
// It must not import the distribution components (dfdaemon, supernode); the mirror is reached
// only through hosts.toml, exactly as containerd itself and ctr reach it, so what works for pouch
// works for any client.
package runtime
