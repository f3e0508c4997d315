package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
	"github.com/distribution/reference"
)

// Defaults for Config.
const (
	DefaultAddress   = "/run/containerd/containerd.sock"
	DefaultNamespace = "pouch"
	DefaultHostsDir  = "/etc/containerd/certs.d"
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
	return c
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if c.DialTimeout < 0 {
		return fmt.Errorf("runtime: negative dial timeout %s", c.DialTimeout)
	}
	return nil
}

// Runtime is a connection to one containerd, in one namespace.
type Runtime struct {
	cfg    Config
	client *containerd.Client
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
	return &Runtime{cfg: cfg, client: client}, nil
}

// Close closes the connection to containerd.
func (r *Runtime) Close() error { return r.client.Close() }

// Client returns the underlying containerd client, for callers that need more than this
// package offers.
func (r *Runtime) Client() *containerd.Client { return r.client }

// resolver reads the hosts directory on every call, so a hosts.toml written while pouch runs is
// honoured by the next pull.
func (r *Runtime) resolver(ctx context.Context) remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: config.ConfigureHosts(ctx, config.HostOptions{HostDir: config.HostDirFromRoot(r.cfg.HostsDir)}),
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
