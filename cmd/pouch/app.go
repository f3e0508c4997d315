package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	ctdlog "github.com/containerd/log"
	units "github.com/docker/go-units"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/logging"
	"github.com/pouch-p2p/pouch/internal/version"
	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// containerExit carries a container's non-zero exit code up to main.
type containerExit struct{ code int }

func (e *containerExit) Error() string { return fmt.Sprintf("container exited with code %d", e.code) }

// run runs the pouch command line args (args[0] is the program name).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return app(stdin, stdout, stderr).RunContext(ctx, args)
}

func app(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	a := &cli.App{
		Name:      "pouch",
		Version:   version.Get().String(),
		Usage:     "pull images through the P2P registry mirror and run them on containerd",
		UsageText: "pouch [--address SOCKET] [--namespace NS] [--hosts-dir DIR] [--root DIR] COMMAND [ARGS...]",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "address", Value: runtime.DefaultAddress, EnvVars: []string{"POUCH_ADDRESS"}, Usage: "containerd's socket"},
			&cli.StringFlag{Name: "namespace", Value: runtime.DefaultNamespace, EnvVars: []string{"POUCH_NAMESPACE"}, Usage: "containerd namespace"},
			&cli.StringFlag{Name: "hosts-dir", Value: runtime.DefaultHostsDir, EnvVars: []string{"POUCH_HOSTS_DIR"}, Usage: "containerd hosts directory (<dir>/<registry>/hosts.toml) read by every pull"},
			&cli.StringFlag{Name: "snapshotter", EnvVars: []string{"POUCH_SNAPSHOTTER"}, Usage: "containerd snapshotter (default: containerd's)"},
			&cli.StringFlag{Name: "root", Value: runtime.DefaultRoot, EnvVars: []string{"POUCH_ROOT"}, Usage: "pouch's own state: logs, volumes, network namespaces and leases"},
			&cli.StringFlag{Name: "bridge", Value: network.DefaultBridge, EnvVars: []string{"POUCH_BRIDGE"}, Usage: "the bridge network's host bridge"},
			&cli.StringFlag{Name: "subnet", Value: network.DefaultSubnet, EnvVars: []string{"POUCH_SUBNET"}, Usage: "the bridge network's IPv4 range (refused when it overlaps a host route)"},
			&cli.StringFlag{Name: "config", EnvVars: []string{"DOCKER_CONFIG"}, Usage: "docker's config directory, whose config.json holds registry credentials (default ~/.docker)"},
			&cli.StringSliceFlag{Name: "cni-path", Value: cli.NewStringSlice(network.DefaultPluginDirs...), EnvVars: []string{"POUCH_CNI_PATH"}, Usage: "directories of the CNI plugins"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
		},
		Commands: append(append([]*cli.Command{
			mirrorCommand(),
			{
				Name:      "pull",
				Usage:     "pull an image through the mirror",
				ArgsUsage: "IMAGE",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] to pull (default: the host's)"}},
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					if c.NArg() != 1 {
						return fmt.Errorf("pull takes exactly one IMAGE (got %d arguments)", c.NArg())
					}
					_, err := rt.PullPlatform(c.Context, c.Args().First(), c.String("platform"), c.App.Writer)
					return err
				}),
			},
			{
				Name:  "images",
				Usage: "list images",
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					imgs, err := rt.Images(c.Context)
					if err != nil {
						return err
					}
					w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "IMAGE\tDIGEST\tSIZE\tCREATED")
					for _, img := range imgs {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", img.Name, shortDigest(img.Digest.String()), units.BytesSize(float64(img.Size)), ago(img.Created))
					}
					return w.Flush()
				}),
			},
			{
				Name:      "rmi",
				Usage:     "remove images",
				ArgsUsage: "IMAGE...",
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					return each(c, "rmi", "IMAGE", func(ref string) (string, error) { return ref, rt.RemoveImage(c.Context, ref) })
				}),
			},
		}, containerCommands()...), otherCommands()...),
	}
	// Usage errors are pouch's failures (125) and print one line, as the others do.
	cliutil.Conventions(a)
	return a
}

// runtimeConfig is the runtime's config from the global flags.
func runtimeConfig(c *cli.Context, log *zap.Logger) (runtime.Config, error) {
	root, err := filepath.Abs(c.String("root"))
	if err != nil {
		return runtime.Config{}, err
	}
	helper, err := os.Executable()
	if err != nil {
		return runtime.Config{}, fmt.Errorf("find the pouch binary: %w", err)
	}
	return runtime.Config{
		Address: c.String("address"), Namespace: c.String("namespace"),
		HostsDir: c.String("hosts-dir"), Snapshotter: c.String("snapshotter"),
		Root:           root,
		Network:        network.Config{Bridge: c.String("bridge"), Subnet: c.String("subnet"), PluginDirs: c.StringSlice("cni-path")},
		Helper:         helper,
		CredentialsDir: c.String("config"),
		Log:            log,
	}, nil
}

// withRuntime sets up logging, connects to containerd and runs action.
func withRuntime(action func(*cli.Context, *runtime.Runtime) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		log, err := newLogger(c)
		if err != nil {
			return err
		}
		defer log.Sync()
		cfg, err := runtimeConfig(c, log)
		if err != nil {
			return err
		}
		rt, err := runtime.New(c.Context, cfg)
		if err != nil {
			return err
		}
		defer rt.Close()
		log.Debug("connected to containerd", zap.String("address", cfg.Address), zap.String("namespace", cfg.Namespace))
		return action(c, rt)
	}
}

// newLogger builds pouch's logger and quiets containerd's client log to the same level.
func newLogger(c *cli.Context) (*zap.Logger, error) {
	level := c.String("log-level")
	log, err := logging.New(level, logging.FormatConsole)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if err := ctdlog.SetLevel(level); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return log.Named("pouch"), nil
}

// each applies fn to every argument, prints what each one done returns, and reports all
// failures.
func each(c *cli.Context, cmd, what string, fn func(string) (string, error)) error {
	if c.NArg() == 0 {
		return fmt.Errorf("%s needs at least one %s", cmd, what)
	}
	var errs []string
	for _, arg := range c.Args().Slice() {
		out, err := fn(arg)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		fmt.Fprintln(c.App.Writer, out)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}
