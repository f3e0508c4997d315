package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	ctdlog "github.com/containerd/log"
	units "github.com/docker/go-units"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/logging"
	"github.com/pouch-p2p/pouch/internal/version"
	"github.com/pouch-p2p/pouch/runtime"
)

// containerExit carries a container's non-zero exit code up to main.
type containerExit struct{ code int }

func (e *containerExit) Error() string { return fmt.Sprintf("container exited with code %d", e.code) }

// run runs the pouch command line args (args[0] is the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return app(stdout, stderr).RunContext(ctx, args)
}

func app(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "pouch",
		Version:   version.Get().String(),
		Usage:     "pull images through the P2P registry mirror and run them on containerd",
		UsageText: "pouch [--address SOCKET] [--namespace NS] [--hosts-dir DIR] COMMAND [ARGS...]",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "address", Value: runtime.DefaultAddress, Usage: "containerd's socket"},
			&cli.StringFlag{Name: "namespace", Value: runtime.DefaultNamespace, Usage: "containerd namespace"},
			&cli.StringFlag{Name: "hosts-dir", Value: runtime.DefaultHostsDir, Usage: "containerd hosts directory (<dir>/<registry>/hosts.toml) read by every pull"},
			&cli.StringFlag{Name: "snapshotter", Usage: "containerd snapshotter (default: containerd's)"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
		},
		Commands: []*cli.Command{
			{
				Name:  "mirror",
				Usage: "point containerd at a registry mirror",
				Subcommands: []*cli.Command{{
					Name:      "setup",
					Usage:     "write hosts.toml so pulls go through the mirror",
					UsageText: "pouch mirror setup --mirror URL [--hosts-dir DIR] [--registry HOST]...",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "hosts-dir", Usage: "hosts directory to write (default: the global --hosts-dir)"},
						&cli.StringFlag{Name: "mirror", Required: true, Usage: "mirror base URL, e.g. http://127.0.0.1:65001 (a dfdaemon)"},
						&cli.StringSliceFlag{Name: "registry", Usage: "registry host, or http(s)://host for its upstream scheme; repeatable (default: _default, every registry)"},
					},
					Action: mirrorSetup,
				}},
			},
			{
				Name:      "pull",
				Usage:     "pull an image through the mirror",
				ArgsUsage: "IMAGE",
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					if c.NArg() != 1 {
						return fmt.Errorf("pull takes exactly one IMAGE (got %d arguments)", c.NArg())
					}
					_, err := rt.Pull(c.Context, c.Args().First(), c.App.Writer)
					return err
				}),
			},
			{
				Name:      "run",
				Usage:     "run a container (pulling its image when missing); its exit code is pouch's",
				ArgsUsage: "IMAGE [CMD [ARG...]]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
					&cli.StringFlag{Name: "name", Usage: "container name (default: random)"},
				},
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					if c.NArg() < 1 {
						return errors.New("run needs an IMAGE")
					}
					code, err := rt.Run(c.Context, runtime.RunOptions{
						Image: c.Args().First(), Args: c.Args().Tail(), Name: c.String("name"), Rm: c.Bool("rm"),
						Stdout: c.App.Writer, Stderr: c.App.ErrWriter, Progress: c.App.ErrWriter,
					})
					if err != nil {
						return err
					}
					if code != 0 {
						return &containerExit{code: code}
					}
					return nil
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
				Name:  "ps",
				Usage: "list containers, running and stopped",
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					cs, err := rt.Containers(c.Context)
					if err != nil {
						return err
					}
					w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "NAME\tIMAGE\tSTATUS\tCREATED")
					for _, ctr := range cs {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", ctr.Name, ctr.Image, ctr.Status, ago(ctr.Created))
					}
					return w.Flush()
				}),
			},
			{
				Name:      "rm",
				Usage:     "remove stopped containers",
				ArgsUsage: "NAME...",
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					return each(c, "rm", "NAME", func(name string) error { return rt.RemoveContainer(c.Context, name) })
				}),
			},
			{
				Name:      "rmi",
				Usage:     "remove images",
				ArgsUsage: "IMAGE...",
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					return each(c, "rmi", "IMAGE", func(ref string) error { return rt.RemoveImage(c.Context, ref) })
				}),
			},
		},
	}
}

// withRuntime sets up logging, connects to containerd and runs action.
func withRuntime(action func(*cli.Context, *runtime.Runtime) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		log, err := newLogger(c)
		if err != nil {
			return err
		}
		defer log.Sync()
		rt, err := runtime.New(c.Context, runtime.Config{
			Address: c.String("address"), Namespace: c.String("namespace"),
			HostsDir: c.String("hosts-dir"), Snapshotter: c.String("snapshotter"),
		})
		if err != nil {
			return err
		}
		defer rt.Close()
		log.Debug("connected to containerd", zap.String("address", c.String("address")), zap.String("namespace", c.String("namespace")))
		return action(c, rt)
	}
}

// newLogger builds pouch's logger and quiets containerd's client log to the same level.
func newLogger(c *cli.Context) (*zap.Logger, error) {
	level := c.String("log-level")
	log, err := logging.New(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if err := ctdlog.SetLevel(level); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return log.Named("pouch"), nil
}

// each applies fn to every argument, prints each one done, and reports all failures.
func each(c *cli.Context, cmd, what string, fn func(string) error) error {
	if c.NArg() == 0 {
		return fmt.Errorf("%s needs at least one %s", cmd, what)
	}
	var errs []string
	for _, arg := range c.Args().Slice() {
		if err := fn(arg); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		fmt.Fprintln(c.App.Writer, arg)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func mirrorSetup(c *cli.Context) error {
	dir := c.String("hosts-dir")
	if dir == "" {
		// The parent ("mirror") has no such flag, so the lookup reaches the global one.
		dir = c.Lineage()[1].String("hosts-dir")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	registries := c.StringSlice("registry")
	if len(registries) == 0 {
		registries = []string{runtime.DefaultRegistry}
	}
	for _, reg := range registries {
		path, err := runtime.WriteHostsTOML(dir, reg, c.String("mirror"))
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, "wrote", path)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "\ncontainerd 1.x: add to /etc/containerd/config.toml and restart containerd:\n")
	fmt.Fprintf(w, "  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = %q\n", dir)
	fmt.Fprintf(w, "containerd 2.x: add to /etc/containerd/config.toml and restart containerd:\n")
	fmt.Fprintf(w, "  [plugins.\"io.containerd.cri.v1.images\".registry]\n    config_path = %q\n", dir)
	fmt.Fprintf(w, "ctr and other clients: --hosts-dir %s (pouch: --hosts-dir %s)\n", dir, dir)
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
	return time.Since(t).Round(time.Second).String() + " ago"
}
