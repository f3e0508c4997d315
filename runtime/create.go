package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/platforms"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pouch-p2p/pouch/runtime/logs"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// Labels pouch sets on the containers it creates. Everything pouch knows of a container that
// containerd does not is here, so containerd's metadata is the one store; files under the root
// hold only data (logs, generated /etc files, volumes, the network namespace).
const (
	// LabelExitCode holds the exit code of the container's last run.
	LabelExitCode = "io.pouch.exit-code"
	// LabelCreatedBy marks containers created by pouch.
	LabelCreatedBy = "io.pouch.created-by"

	labelRestart      = "io.pouch.restart"       // the policy, as --restart takes it
	labelRestartCount = "io.pouch.restart-count" // restarts since the last start by a user
	labelDesired      = "io.pouch.desired-state" // "stopped" after stop/kill: no restart
	labelStartedAt    = "io.pouch.started-at"    // RFC 3339
	labelFinishedAt   = "io.pouch.finished-at"
	labelNetwork      = "io.pouch.network"
	labelIP           = "io.pouch.ip"
	labelPorts        = "io.pouch.ports"  // JSON []network.PortMapping
	labelMounts       = "io.pouch.mounts" // JSON []Mount
	labelAutoRemove   = "io.pouch.auto-remove"
	labelDir          = "io.pouch.dir" // the container's directory under the root
	labelLog          = "io.pouch.log" // JSON logs.Config
	labelStopSignal   = "io.pouch.stop-signal"
	labelStdin        = "io.pouch.stdin" // "true": -i
)

// PullPolicy says when Create pulls the image.
type PullPolicy string

// The pull policies of --pull.
const (
	PullMissing PullPolicy = "missing"
	PullAlways  PullPolicy = "always"
	PullNever   PullPolicy = "never"
)

// CreateOptions describe a container, as `pouch run`'s flags do.
type CreateOptions struct {
	// Image is the image reference.
	Image string
	// Name is the container's name (its containerd ID); empty means 12 random hex digits.
	Name string
	// Args replaces the image's CMD when not empty (the ENTRYPOINT stays, as with docker).
	Args []string
	// Entrypoint, when not nil, replaces the image's ENTRYPOINT and drops its CMD; an empty
	// slice clears it.
	Entrypoint []string
	// Env adds KEY=VALUE pairs to the image's environment (see ParseEnv, ReadEnvFile).
	Env []string
	// Mounts are bind mounts and named volumes (see ParseVolume).
	Mounts []Mount
	// Workdir and User override the image's (User: uid[:gid] or a name in the image's
	// /etc/passwd).
	Workdir, User string
	// TTY gives the container a terminal; Stdin keeps its stdin open (-t, -i).
	TTY, Stdin bool
	// Memory is the memory limit in bytes (swap included: no swap); 0 means none.
	Memory int64
	// CPUs is the CPU quota in CPUs (1.5 = one and a half); 0 means none.
	CPUs float64
	// PidsLimit bounds the number of processes; 0 means none.
	PidsLimit int64
	// ReadOnly mounts the root filesystem read-only.
	ReadOnly bool
	// Platform selects the image's platform ("linux/arm64"); empty means the host's.
	Platform string
	// Pull says when to pull the image; empty means PullMissing.
	Pull PullPolicy
	// Network is bridge (the default), host or none; Ports are published on the bridge.
	Network network.Mode
	Ports   []network.PortMapping
	// Restart is the restart policy (supervised by a pouch process; see Start).
	Restart RestartPolicy
	// AutoRemove removes the container when it exits (--rm).
	AutoRemove bool
	// LogMaxSize and LogMaxFiles bound the log (logs.DefaultMaxSize, DefaultMaxFiles when 0).
	LogMaxSize  int64
	LogMaxFiles int
	// Progress receives the pull's progress; nil discards it.
	Progress io.Writer
}

// Create makes a container from opts without starting it and returns its ID (its name). Its
// network namespace and directory are made too; on failure nothing is left behind.
func (r *Runtime) Create(ctx context.Context, opts CreateOptions) (id string, err error) {
	if err := validateCreate(&opts); err != nil {
		return "", err
	}
	img, err := r.ensureImage(ctx, opts.Image, opts.Platform, opts.Pull, opts.Progress)
	if err != nil {
		return "", err
	}
	id = opts.Name
	if id == "" {
		if id, err = randomID(); err != nil {
			return "", err
		}
	}
	if _, err := r.client.LoadContainer(ctx, id); err == nil {
		return "", fmt.Errorf("%w: %s (remove it with pouch rm %s, or choose another --name)", ErrContainerExists, id, id)
	}
	dir := filepath.Join(r.cfg.Root, "containers", id)
	// A directory without a container is what a crash left: it is this name's to reuse.
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o710); err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	cleanup := []func(){func() { os.RemoveAll(dir) }}
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	ociMounts, err := r.prepareMounts(opts.Mounts)
	if err != nil {
		return "", err
	}
	att, err := r.net.Setup(ctx, id, opts.Network, opts.Ports)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	cleanup = append(cleanup, func() {
		_ = r.net.Teardown(context.WithoutCancel(ctx), id, opts.Network, opts.Ports)
	})

	imgConfig, err := img.Spec(ctx)
	if err != nil {
		return "", fmt.Errorf("image %s: config: %w", img.Name(), err)
	}
	args := processArgs(imgConfig.Config.Entrypoint, imgConfig.Config.Cmd, opts.Entrypoint, opts.Args)
	if len(args) == 0 {
		return "", fmt.Errorf("%w: image %s has no ENTRYPOINT or CMD: give a command after the image", ErrInvalid, opts.Image)
	}
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithHostname(hostname(id))},
		processOpts(args, opts.Env, opts.Workdir, opts.User)...)
	if opts.TTY {
		specOpts = append(specOpts, oci.WithTTY)
	}
	if opts.ReadOnly {
		specOpts = append(specOpts, oci.WithRootFSReadonly())
	}
	specOpts = append(specOpts, withResources(opts.Memory, opts.CPUs, opts.PidsLimit))
	switch opts.Network {
	case network.Host:
		specOpts = append(specOpts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	default:
		specOpts = append(specOpts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: att.NetNS}))
		etc, err := writeEtcFiles(dir, id, att.IP)
		if err != nil {
			return "", fmt.Errorf("container %s: %w", id, err)
		}
		ociMounts = append(ociMounts, etc...)
	}
	specOpts = append(specOpts, oci.WithMounts(ociMounts))

	labels, err := createLabels(opts, dir, att, imgConfig.Config.StopSignal)
	if err != nil {
		return "", err
	}
	newOpts := []containerd.NewContainerOpts{containerd.WithImage(img)}
	if r.cfg.Snapshotter != "" {
		newOpts = append(newOpts, containerd.WithSnapshotter(r.cfg.Snapshotter))
	}
	newOpts = append(newOpts,
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(labels),
	)
	if _, err := r.client.NewContainer(ctx, id, newOpts...); err != nil {
		if errdefs.IsAlreadyExists(err) {
			return "", fmt.Errorf("%w: %s", ErrContainerExists, id)
		}
		// The snapshot may have been made before the spec failed.
		_ = r.client.SnapshotService(r.snapshotter()).Remove(context.WithoutCancel(ctx), id)
		return "", fmt.Errorf("create container %s: %w", id, err)
	}
	return id, nil
}

func validateCreate(opts *CreateOptions) error {
	if opts.Name != "" && !validName.MatchString(opts.Name) {
		return fmt.Errorf("%w: container name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalid, opts.Name)
	}
	if opts.Network == "" {
		opts.Network = network.Bridge
	}
	if _, err := network.ParseMode(string(opts.Network)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if opts.Restart.Name == "" {
		opts.Restart.Name = "no"
	}
	if _, err := ParseRestart(opts.Restart.String()); err != nil {
		return err
	}
	if opts.AutoRemove && opts.Restart.Name != "no" {
		return fmt.Errorf("%w: --rm and --restart %s conflict: a container removed when it exits cannot be restarted", ErrInvalid, opts.Restart)
	}
	if opts.Memory < 0 || (opts.Memory > 0 && opts.Memory < 6<<20) {
		return fmt.Errorf("%w: --memory %d: the minimum is 6MiB", ErrInvalid, opts.Memory)
	}
	if opts.CPUs < 0 || opts.PidsLimit < 0 {
		return fmt.Errorf("%w: --cpus and --pids-limit cannot be negative", ErrInvalid)
	}
	switch opts.Pull {
	case "":
		opts.Pull = PullMissing
	case PullMissing, PullAlways, PullNever:
	default:
		return fmt.Errorf("%w: --pull %q (want missing, always or never)", ErrInvalid, opts.Pull)
	}
	if opts.Platform != "" {
		if _, err := platforms.Parse(opts.Platform); err != nil {
			return fmt.Errorf("%w: --platform %q: %w", ErrInvalid, opts.Platform, err)
		}
	}
	return nil
}

// processArgs is docker's rule: --entrypoint replaces ENTRYPOINT and drops CMD; arguments
// after the image replace CMD.
func processArgs(entrypoint, cmd, newEntrypoint, args []string) []string {
	if newEntrypoint != nil {
		entrypoint, cmd = newEntrypoint, nil
	}
	if len(args) > 0 {
		cmd = args
	}
	return append(append([]string{}, entrypoint...), cmd...)
}

// processOpts set the process's command and override the environment, directory and user
// (run's and exec's -e, -w and -u).
func processOpts(args, env []string, workdir, user string) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithProcessArgs(args...)}
	if len(env) > 0 {
		opts = append(opts, oci.WithEnv(env))
	}
	if workdir != "" {
		opts = append(opts, oci.WithProcessCwd(workdir))
	}
	if user != "" {
		opts = append(opts, oci.WithUser(user))
	}
	return opts
}

// withResources sets the cgroup limits: memory with no swap beyond it, a CFS quota, pids.
func withResources(memory int64, cpus float64, pids int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if memory == 0 && cpus == 0 && pids == 0 {
			return nil
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		res := s.Linux.Resources
		if memory > 0 {
			limit := memory
			res.Memory = &specs.LinuxMemory{Limit: &limit}
			if swapLimitSupported() {
				swap := memory // the limit of memory and swap together: no swap
				res.Memory.Swap = &swap
			}
		}
		if cpus > 0 {
			period := uint64(100000)
			quota := int64(cpus * float64(period))
			res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
		}
		if pids > 0 {
			res.Pids = &specs.LinuxPids{Limit: pids}
		}
		return nil
	}
}

// swapLimitSupported reports whether the kernel accounts swap per cgroup (always with cgroup
// v2; with v1 only when booted with swap accounting), since runc refuses a swap limit it
// cannot set.
func swapLimitSupported() bool {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// prepareMounts creates missing bind sources and named volumes and returns the OCI mounts.
func (r *Runtime) prepareMounts(mounts []Mount) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range mounts {
		src := m.Source
		switch m.Type {
		case "volume":
			v, err := r.volumes.Create(m.Source)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			src = v.Mountpoint
		case "bind":
			// docker -v creates a missing host directory.
			if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, fmt.Errorf("%w: -v %s: %w", ErrInvalid, src, err)
				}
			}
		default:
			return nil, fmt.Errorf("%w: mount type %q", ErrInvalid, m.Type)
		}
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Type: "bind", Source: src, Destination: m.Destination, Options: opts})
	}
	return out, nil
}

// writeEtcFiles writes the container's /etc/hosts, /etc/hostname and /etc/resolv.conf.
func writeEtcFiles(dir, id, ip string) ([]specs.Mount, error) {
	name := hostname(id)
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip != "" {
		hosts += ip + "\t" + name + "\n"
	}
	files := map[string]string{
		"hosts":       hosts,
		"hostname":    name + "\n",
		"resolv.conf": resolvConf(),
	}
	var out []specs.Mount
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte(files[f]), 0o644); err != nil {
			return nil, err
		}
		out = append(out, specs.Mount{Type: "bind", Source: p, Destination: "/etc/" + f, Options: []string{"rbind", "rprivate"}})
	}
	return out, nil
}

// resolvConf is the host's resolv.conf without loopback name servers, which a container on
// its own network cannot reach.
func resolvConf() string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		if line != "" {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func hostname(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func createLabels(opts CreateOptions, dir string, att network.Attachment, stopSignal string) (map[string]string, error) {
	ports, err := json.Marshal(opts.Ports)
	if err != nil {
		return nil, err
	}
	mounts, err := json.Marshal(opts.Mounts)
	if err != nil {
		return nil, err
	}
	logCfg, err := json.Marshal(logs.Config{Path: filepath.Join(dir, "container.log"), MaxSize: opts.LogMaxSize, MaxFiles: opts.LogMaxFiles})
	if err != nil {
		return nil, err
	}
	l := map[string]string{
		LabelCreatedBy:    "pouch",
		labelRestart:      opts.Restart.String(),
		labelRestartCount: "0",
		labelNetwork:      string(opts.Network),
		labelPorts:        string(ports),
		labelMounts:       string(mounts),
		labelDir:          dir,
		labelLog:          string(logCfg),
		labelAutoRemove:   strconv.FormatBool(opts.AutoRemove),
		labelStdin:        strconv.FormatBool(opts.Stdin),
	}
	if att.IP != "" {
		l[labelIP] = att.IP
	}
	if stopSignal != "" {
		l[labelStopSignal] = stopSignal
	}
	return l, nil
}

// randomID returns 12 hex digits, like a short Docker container ID.
func randomID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errors.New("random container name: " + err.Error())
	}
	return hex.EncodeToString(b[:]), nil
}

func (r *Runtime) snapshotter() string {
	if r.cfg.Snapshotter != "" {
		return r.cfg.Snapshotter
	}
	return containerd.DefaultSnapshotter
}

// ensureImage returns the image, pulling it as policy says and unpacking it when its snapshot
// is missing.
func (r *Runtime) ensureImage(ctx context.Context, ref, platform string, policy PullPolicy, progress io.Writer) (containerd.Image, error) {
	name, err := NormalizeRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var img containerd.Image
	if policy == PullAlways {
		if img, err = r.pull(ctx, name, platform, progress); err != nil {
			return nil, err
		}
	} else {
		meta, err := r.client.ImageService().Get(ctx, name)
		switch {
		case errdefs.IsNotFound(err) && policy == PullNever:
			return nil, fmt.Errorf("%w: %s is not in containerd and --pull never forbids pulling it (pouch pull %s)", ErrImageNotFound, name, name)
		case errdefs.IsNotFound(err):
			if img, err = r.pull(ctx, name, platform, progress); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("image %s: %w", name, err)
		default:
			img = containerd.NewImage(r.client, meta)
		}
	}
	if platform != "" {
		p, err := platforms.Parse(platform)
		if err != nil {
			return nil, fmt.Errorf("%w: --platform %q: %w", ErrInvalid, platform, err)
		}
		img = containerd.NewImageWithPlatform(r.client, img.Metadata(), platforms.Only(p))
	}
	unpacked, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		if errdefs.IsNotFound(err) && platform != "" {
			return nil, fmt.Errorf("%w: %s has no %s content: pull it with --platform %s --pull always", ErrImageNotFound, name, platform, platform)
		}
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
	}
	return img, nil
}
