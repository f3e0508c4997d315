package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// createFlags are the flags of run and create, named as docker names them.
func createFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "container name (default: 12 random hex digits)"},
		&cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable: KEY=VALUE, or KEY to pass pouch's own (repeatable)"},
		&cli.StringSliceFlag{Name: "env-file", Usage: "read KEY=VALUE lines from a file (repeatable)"},
		&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "mount /host/path:/path[:ro] or VOLUME:/path[:ro] (repeatable)"},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish [IP:]HOSTPORT:PORT[/tcp|/udp] of a bridge container on the host (repeatable)"},
		&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Value: "bridge", Usage: "bridge, host or none"},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory in the container"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user: uid[:gid] or a name in the image's /etc/passwd"},
		&cli.StringFlag{Name: "entrypoint", Usage: "replace the image's ENTRYPOINT (and drop its CMD)"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin open"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a terminal"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit (e.g. 64m, 1g); no swap beyond it"},
		&cli.Float64Flag{Name: "cpus", Usage: "CPU quota in CPUs (e.g. 1.5)"},
		&cli.Int64Flag{Name: "pids-limit", Usage: "maximum number of processes"},
		&cli.StringFlag{Name: "restart", Value: "no", Usage: "no, always, unless-stopped or on-failure[:N]"},
		&cli.BoolFlag{Name: "read-only", Usage: "mount the root filesystem read-only"},
		&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] of the image (default: the host's)"},
		&cli.StringFlag{Name: "pull", Value: "missing", Usage: "missing, always or never"},
		&cli.StringSliceFlag{Name: "log-opt", Usage: "max-size=SIZE (default 10m) or max-file=N (default 3) of the container's log"},
	}
}

// createOptions reads run's and create's flags.
func createOptions(c *cli.Context) (runtime.CreateOptions, error) {
	if c.NArg() < 1 {
		return runtime.CreateOptions{}, fmt.Errorf("%s needs an IMAGE", c.Command.Name)
	}
	o := runtime.CreateOptions{
		Image: c.Args().First(), Args: c.Args().Tail(), Name: c.String("name"), AutoRemove: c.Bool("rm"),
		Workdir: c.String("workdir"), User: c.String("user"), TTY: c.Bool("tty"), Stdin: c.Bool("interactive"),
		CPUs: c.Float64("cpus"), PidsLimit: c.Int64("pids-limit"), ReadOnly: c.Bool("read-only"),
		Platform: c.String("platform"), Pull: runtime.PullPolicy(c.String("pull")), Progress: c.App.ErrWriter,
	}
	if c.IsSet("entrypoint") {
		o.Entrypoint = []string{}
		if e := c.String("entrypoint"); e != "" {
			o.Entrypoint = []string{e}
		}
	}
	var err error
	for _, f := range c.StringSlice("env-file") {
		env, err := runtime.ReadEnvFile(f, os.LookupEnv)
		if err != nil {
			return o, err
		}
		o.Env = append(o.Env, env...)
	}
	env, err := runtime.ParseEnv(c.StringSlice("env"), os.LookupEnv)
	if err != nil {
		return o, err
	}
	o.Env = append(o.Env, env...)
	for _, v := range c.StringSlice("volume") {
		m, err := runtime.ParseVolume(v)
		if err != nil {
			return o, err
		}
		o.Mounts = append(o.Mounts, m)
	}
	if o.Network, err = network.ParseMode(c.String("network")); err != nil {
		return o, err
	}
	for _, p := range c.StringSlice("publish") {
		pm, err := network.ParsePort(p)
		if err != nil {
			return o, err
		}
		o.Ports = append(o.Ports, pm)
	}
	if m := c.String("memory"); m != "" {
		if o.Memory, err = units.RAMInBytes(m); err != nil {
			return o, fmt.Errorf("--memory %q: %w", m, err)
		}
	}
	if o.Restart, err = runtime.ParseRestart(c.String("restart")); err != nil {
		return o, err
	}
	for _, opt := range c.StringSlice("log-opt") {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "max-size":
			if o.LogMaxSize, err = units.RAMInBytes(v); err != nil || o.LogMaxSize <= 0 {
				return o, fmt.Errorf("--log-opt %q: want a size such as 10m", opt)
			}
		case "max-file":
			if o.LogMaxFiles, err = strconv.Atoi(v); err != nil || o.LogMaxFiles < 1 {
				return o, fmt.Errorf("--log-opt %q: want a count of at least 1", opt)
			}
		default:
			return o, fmt.Errorf("--log-opt %q: pouch knows max-size and max-file", opt)
		}
	}
	return o, nil
}

func containerCommands() []*cli.Command {
	stopTimeout := &cli.IntFlag{Name: "time", Aliases: []string{"t"}, Value: int(runtime.DefaultStopTimeout / time.Second), Usage: "seconds to wait for the container to stop before killing it"}
	return []*cli.Command{
		{
			Name:      "run",
			Usage:     "run a container (pulling its image when missing); in the foreground its exit code is pouch's",
			ArgsUsage: "IMAGE [CMD [ARG...]]",
			Flags: append(createFlags(),
				&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background and print the container's ID"}),
			UseShortOptionHandling: true,
			Action:                 withRuntime(runContainer),
		},
		{
			Name:                   "create",
			Usage:                  "create a container without starting it; prints its ID",
			ArgsUsage:              "IMAGE [CMD [ARG...]]",
			Flags:                  createFlags(),
			UseShortOptionHandling: true,
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				opts, err := createOptions(c)
				if err != nil {
					return err
				}
				id, err := rt.Create(c.Context, opts)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, id)
				return nil
			}),
		},
		{
			Name:      "start",
			Usage:     "start containers in the background",
			ArgsUsage: "CONTAINER...",
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				return each(c, "start", "CONTAINER", func(ref string) (string, error) { return rt.Start(c.Context, ref) })
			}),
		},
		{
			Name:      "stop",
			Usage:     "stop containers: their stop signal, then SIGKILL after --time",
			ArgsUsage: "CONTAINER...",
			Flags:     []cli.Flag{stopTimeout},
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				return each(c, "stop", "CONTAINER", func(ref string) (string, error) {
					_, err := rt.Stop(c.Context, ref, time.Duration(c.Int("time"))*time.Second)
					return ref, err
				})
			}),
		},
		{
			Name:      "restart",
			Usage:     "stop and start containers",
			ArgsUsage: "CONTAINER...",
			Flags:     []cli.Flag{stopTimeout},
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				return each(c, "restart", "CONTAINER", func(ref string) (string, error) {
					_, err := rt.Restart(c.Context, ref, time.Duration(c.Int("time"))*time.Second)
					return ref, err
				})
			}),
		},
		{
			Name:      "kill",
			Usage:     "send containers a signal",
			ArgsUsage: "CONTAINER...",
			Flags:     []cli.Flag{&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Value: "KILL", Usage: "signal name or number"}},
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				return each(c, "kill", "CONTAINER", func(ref string) (string, error) { return ref, rt.Kill(c.Context, ref, c.String("signal")) })
			}),
		},
		{
			Name:      "rm",
			Usage:     "remove containers (their network, log and snapshot; named volumes stay)",
			ArgsUsage: "CONTAINER...",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill a running container first"}},
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				return each(c, "rm", "CONTAINER", func(ref string) (string, error) { return ref, rt.Remove(c.Context, ref, c.Bool("force")) })
			}),
		},
		{
			Name:      "logs",
			Usage:     "print a container's output",
			ArgsUsage: "CONTAINER",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing until the container stops"},
				&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "lines from the end to print"},
				&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "prefix each line with the time it was written"},
			},
			UseShortOptionHandling: true,
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				if c.NArg() != 1 {
					return errors.New("logs takes exactly one CONTAINER")
				}
				tail := -1
				if t := c.String("tail"); t != "all" {
					n, err := strconv.Atoi(t)
					if err != nil || n < 0 {
						return fmt.Errorf("--tail %q: want a number of lines or all", t)
					}
					tail = n
				}
				return rt.Logs(c.Context, c.Args().First(), runtime.LogsOptions{Tail: tail, Follow: c.Bool("follow"), Timestamps: c.Bool("timestamps")},
					c.App.Writer, c.App.ErrWriter)
			}),
		},
		{
			Name:      "exec",
			Usage:     "run a command in a running container; its exit code is pouch's",
			ArgsUsage: "CONTAINER CMD [ARG...]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin open"},
				&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a terminal"},
				&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable (repeatable)"},
				&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory"},
				&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user: uid[:gid] or a name"},
			},
			UseShortOptionHandling: true,
			Action:                 withRuntime(execContainer),
		},
		{
			Name:      "inspect",
			Usage:     "print containers' details as JSON (or --format)",
			ArgsUsage: "CONTAINER...",
			Flags:     []cli.Flag{formatFlag()},
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				if c.NArg() == 0 {
					return errors.New("inspect needs at least one CONTAINER")
				}
				var out []runtime.Details
				for _, ref := range c.Args().Slice() {
					d, err := rt.Inspect(c.Context, ref)
					if err != nil {
						return err
					}
					out = append(out, d)
				}
				if f := c.String("format"); f != "" {
					return formatEach(c.App.Writer, f, out)
				}
				b, err := json.MarshalIndent(out, "", "    ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.App.Writer, string(b))
				return err
			}),
		},
		{
			Name:  "ps",
			Usage: "list running containers (-a: all)",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "stopped containers too"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only the names"},
				formatFlag(),
			},
			UseShortOptionHandling: true,
			Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
				cs, err := rt.Containers(c.Context, c.Bool("all"))
				if err != nil {
					return err
				}
				switch {
				case c.Bool("quiet"):
					return formatEach(c.App.Writer, "{{.Names}}", cs)
				case c.String("format") != "":
					return formatEach(c.App.Writer, c.String("format"), cs)
				}
				w := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
				fmt.Fprintln(w, "NAME\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS")
				for _, ctr := range cs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ctr.Names, ctr.Image, quoteCommand(ctr.Command), ago(ctr.CreatedAt), ctr.Status, ctr.Ports)
				}
				return w.Flush()
			}),
		},
	}
}

// quoteCommand is ps's COMMAND column: quoted, cut at 20 characters as docker does.
func quoteCommand(cmd string) string {
	if r := []rune(cmd); len(r) > 20 {
		cmd = string(r[:19]) + "…"
	}
	return strconv.Quote(cmd)
}

func runContainer(c *cli.Context, rt *runtime.Runtime) error {
	opts, err := createOptions(c)
	if err != nil {
		return err
	}
	if c.Bool("detach") {
		id, err := rt.Create(c.Context, opts)
		if err != nil {
			return err
		}
		if _, err := rt.Start(c.Context, id); err != nil {
			if opts.AutoRemove {
				_ = rt.Remove(c.Context, id, true)
			}
			return err
		}
		fmt.Fprintln(c.App.Writer, id)
		return nil
	}
	ro := runtime.RunOptions{CreateOptions: opts, Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
	if opts.Stdin {
		ro.Stdin = c.App.Reader
	}
	if opts.TTY {
		term, restore, err := attachTerminal(c.App.Reader, opts.Stdin)
		if err != nil {
			return err
		}
		defer restore()
		ro.Terminal = term
	}
	code, err := rt.Run(c.Context, ro)
	if err != nil {
		return err
	}
	if code != 0 {
		return &containerExit{code: code}
	}
	return nil
}

func execContainer(c *cli.Context, rt *runtime.Runtime) error {
	if c.NArg() < 2 {
		return errors.New("exec needs a CONTAINER and a command")
	}
	env, err := runtime.ParseEnv(c.StringSlice("env"), os.LookupEnv)
	if err != nil {
		return err
	}
	opts := runtime.ExecOptions{
		Args: c.Args().Tail(), Env: env, Workdir: c.String("workdir"), User: c.String("user"), TTY: c.Bool("tty"),
		Stdout: c.App.Writer, Stderr: c.App.ErrWriter,
	}
	if c.Bool("interactive") {
		opts.Stdin = c.App.Reader
	}
	if opts.TTY {
		term, restore, err := attachTerminal(c.App.Reader, c.Bool("interactive"))
		if err != nil {
			return err
		}
		defer restore()
		opts.Terminal = term
	}
	code, err := rt.Exec(c.Context, c.Args().First(), opts)
	if err != nil {
		return err
	}
	if code != 0 {
		return &containerExit{code: code}
	}
	return nil
}
