package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
	"github.com/distribution/reference"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/runtime/credentials"
	"github.com/pouch-p2p/pouch/runtime/network"
	"github.com/pouch-p2p/pouch/runtime/volume"
)

// Defaults for Config.
const (
	DefaultAddress   = "/run/containerd/containerd.sock"
	DefaultNamespace = "pouch"
	DefaultHostsDir  = "/etc/containerd/certs.d"
	DefaultRoot      = "/var/lib/pouch"
)

// Sentinel errors; the returned errors wrap them with the socket, image or container concerned.
var (
	// ErrDaemonUnavailable: no containerd answers on the configured socket.
	ErrDaemonUnavailable = errors.New("containerd is not running")
	// ErrImageNotFound: the image is neither in containerd nor in the registry.
	ErrImageNotFound = errors.New("image not found")
	// ErrContainerNotFound: no container of that name in the namespace.
	ErrContainerNotFound = errors.New("container not found")
	// ErrContainerExists: a container of that name already exists.
	ErrContainerExists = errors.New("container already exists")
	// ErrContainerRunning: the container's task is still running.
	ErrContainerRunning = errors.New("container is running")
	// ErrImageInUse: a container was created from the image.
	ErrImageInUse = errors.New("image is in use by a container")
	// ErrContainerNotRunning: the container has no running task (exec, kill).
	ErrContainerNotRunning = errors.New("container is not running")
	// ErrUnauthorized: the registry refused the pull (no or wrong credentials).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrCommandNotFound: the container's command does not exist (exit status 127).
	ErrCommandNotFound = errors.New("command not found")
	// ErrCannotExecute: the container's command exists but cannot be run (exit status 126).
	ErrCannotExecute = errors.New("command cannot be executed")
	// ErrInvalid: an option that cannot work (a bad name, volume, port, limit or policy).
	ErrInvalid = errors.New("invalid option")
	// ErrVolumeInUse: a container mounts the volume.
	ErrVolumeInUse = errors.New("volume is in use")
)

// Config says which containerd to talk to and where the hosts directory is.
type Config struct {
	// Address is containerd's gRPC socket.
	Address string `yaml:"address"`
	// Namespace is the containerd namespace holding pouch's images and containers.
	Namespace string `yaml:"namespace"`
	// HostsDir is the containerd hosts directory (<dir>/<registry>/hosts.toml) every pull reads.
	HostsDir string `yaml:"hostsDir"`
	// Snapshotter is the containerd snapshotter; empty means containerd's default (overlayfs).
	Snapshotter string `yaml:"snapshotter"`
	// DialTimeout bounds connecting to containerd; zero means 5s.
	DialTimeout time.Duration `yaml:"dialTimeout"`
	// Root holds what pouch keeps beside containerd: each container's logs and generated
	// /etc files, named volumes, and the network's state. Empty means DefaultRoot.
	Root string `yaml:"root"`
	// Network is the bridge network's shape; its StateDir defaults to <Root>/network.
	Network network.Config `yaml:"network"`
	// CredentialsDir is the docker config directory whose config.json holds registry
	// credentials; empty means docker's default ($DOCKER_CONFIG, else ~/.docker).
	CredentialsDir string `yaml:"credentialsDir"`
	// Helper is the pouch binary that containerd's shim runs as a detached container's logger
	// and that pouch starts as its supervisor (a process calling HelperMain first thing). Only
	// detached containers (Start, Run with Detach or a restart policy) need it; the pouch
	// command sets it to itself.
	Helper string `yaml:"helper"`
	// Log receives what the runtime does not return as an error (a cleanup that failed).
	Log *zap.Logger `yaml:"-" json:"-"`
}

// withDefaults fills the empty fields.
func (c Config) withDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.HostsDir == "" {
		c.HostsDir = DefaultHostsDir
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.Network.StateDir == "" {
		c.Network.StateDir = filepath.Join(c.Root, "network")
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return c
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if c.DialTimeout < 0 {
		return fmt.Errorf("runtime: negative dial timeout %s", c.DialTimeout)
	}
	if !filepath.IsAbs(c.Root) {
		return fmt.Errorf("runtime: root %q must be an absolute path", c.Root)
	}
	return c.Network.Validate()
}

// Runtime is a connection to one containerd, in one namespace.
type Runtime struct {
	cfg     Config
	client  *containerd.Client
	net     *network.Manager
	volumes *volume.Store
	creds   *credentials.Store
	log     *zap.Logger
}

// New connects to containerd at cfg.Address. A missing socket or a containerd that does not
// answer is reported as ErrDaemonUnavailable naming the socket.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	unavailable := func(why error) error {
		return fmt.Errorf("%w: no containerd on socket %s (%w); start containerd or pass --address", ErrDaemonUnavailable, cfg.Address, why)
	}
	if _, err := os.Stat(cfg.Address); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, unavailable(errors.New("socket does not exist"))
		}
		return nil, unavailable(err)
	}
	client, err := containerd.New(cfg.Address,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithTimeout(cfg.DialTimeout))
	if err != nil {
		return nil, unavailable(err)
	}
	vctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := client.Version(vctx); err != nil {
		client.Close()
		return nil, unavailable(err)
	}
	net, err := network.New(cfg.Network)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &Runtime{
		cfg: cfg, client: client, net: net, log: cfg.Log,
		volumes: volume.New(filepath.Join(cfg.Root, "volumes")),
		creds:   credentials.New(cfg.CredentialsDir),
	}, nil
}

// Close closes the connection to containerd.
func (r *Runtime) Close() error { return r.client.Close() }

// Client returns the underlying containerd client, for callers that need more than this
// package offers.
func (r *Runtime) Client() *containerd.Client { return r.client }

// Volumes is pouch's store of named volumes.
func (r *Runtime) Volumes() *volume.Store { return r.volumes }

// Networks lists the networks a container can join.
func (r *Runtime) Networks() []network.Info { return r.net.Networks() }

// resolver pulls ref's image through the hosts directory, read on every call so a hosts.toml
// written while pouch runs is honoured by the next pull. The credentials stored for ref's
// registry answer every host's challenge, the mirror's included: a mirror relays the registry's
// 401 and its WWW-Authenticate, so the client must answer for the registry it asked for (with a
// bearer realm, the password goes only to the registry's token server; the mirror sees the
// token). The mirror is the node's own dfdaemon, named by the operator in hosts.toml.
func (r *Runtime) resolver(ctx context.Context, registry string) remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{Hosts: RegistryHosts(ctx, r.cfg.HostsDir, r.creds, registry)})
}

// RegistryHosts returns the hosts that serve registry's images, as hosts.toml in hostsDir
// orders them (mirrors first), with the credentials creds holds for registry.
func RegistryHosts(ctx context.Context, hostsDir string, creds *credentials.Store, registry string) docker.RegistryHosts {
	return config.ConfigureHosts(ctx, config.HostOptions{
		HostDir: config.HostDirFromRoot(hostsDir),
		Credentials: func(string) (string, string, error) {
			if creds == nil {
				return "", "", nil
			}
			return creds.Lookup(registry)
		},
	})
}

// NormalizeRef turns a short image name into containerd's full name:
// "busybox" → "docker.io/library/busybox:latest".
func NormalizeRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

// isNotFound reports containerd's not-found, whichever errdefs package produced it.
func isNotFound(err error) bool { return errdefs.IsNotFound(err) }
