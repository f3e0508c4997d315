package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/credentials"
)

func formatFlag() cli.Flag {
	return &cli.StringFlag{Name: "format", Usage: "a Go template per item, as docker's (e.g. '{{.State.Status}}', '{{json .}}')"}
}

// formatEach prints every element of items (a slice) through the template f, one per line.
func formatEach(w io.Writer, f string, items any) error {
	tmpl, err := template.New("format").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"join":  strings.Join,
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
	}).Parse(f)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	v := reflect.ValueOf(items)
	for i := range v.Len() {
		if err := tmpl.Execute(w, v.Index(i).Interface()); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}

func otherCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:  "volume",
			Usage: "manage named volumes",
			Subcommands: []*cli.Command{
				{
					Name: "create", Usage: "create a volume", ArgsUsage: "NAME",
					Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
						return each(c, "volume create", "NAME", func(name string) (string, error) {
							v, err := rt.Volumes().Create(name)
							return v.Name, err
						})
					}),
				},
				{
					Name: "ls", Usage: "list volumes", Flags: []cli.Flag{formatFlag()},
					Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
						vs, err := rt.Volumes().List()
						if err != nil {
							return err
						}
						if f := c.String("format"); f != "" {
							return formatEach(c.App.Writer, f, vs)
						}
						w := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
						fmt.Fprintln(w, "DRIVER\tVOLUME NAME")
						for _, v := range vs {
							fmt.Fprintf(w, "%s\t%s\n", v.Driver, v.Name)
						}
						return w.Flush()
					}),
				},
				{
					Name: "inspect", Usage: "print volumes as JSON", ArgsUsage: "NAME...",
					Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
						var out []any
						for _, name := range c.Args().Slice() {
							v, err := rt.Volumes().Get(name)
							if err != nil {
								return err
							}
							out = append(out, v)
						}
						b, err := json.MarshalIndent(out, "", "    ")
						if err == nil {
							fmt.Fprintln(c.App.Writer, string(b))
						}
						return err
					}),
				},
				{
					Name: "rm", Usage: "remove volumes no container mounts", ArgsUsage: "NAME...",
					Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
						return each(c, "volume rm", "NAME", func(name string) (string, error) { return name, rt.RemoveVolume(c.Context, name) })
					}),
				},
			},
		},
		{
			Name:  "network",
			Usage: "list the networks a container can join",
			Subcommands: []*cli.Command{{
				Name: "ls", Usage: "list networks", Flags: []cli.Flag{formatFlag()},
				Action: withRuntime(func(c *cli.Context, rt *runtime.Runtime) error {
					ns := rt.Networks()
					if f := c.String("format"); f != "" {
						return formatEach(c.App.Writer, f, ns)
					}
					w := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
					fmt.Fprintln(w, "NAME\tDRIVER\tSUBNET\tBRIDGE")
					for _, n := range ns {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n.Name, n.Driver, n.Subnet, n.Bridge)
					}
					return w.Flush()
				}),
			}},
		},
		{
			Name:      "login",
			Usage:     "log in to a registry (credentials kept in docker's config.json or its credential helper)",
			ArgsUsage: "[SERVER]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "username", Aliases: []string{"u"}, Usage: "user name"},
				&cli.StringFlag{Name: "password", Aliases: []string{"p"}, Usage: "password (visible to other users: prefer --password-stdin)"},
				&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from stdin"},
			},
			Action: login,
		},
		{
			Name:      "logout",
			Usage:     "remove a registry's credentials",
			ArgsUsage: "[SERVER]",
			Action: func(c *cli.Context) error {
				server := registryArg(c)
				if err := credentials.New(c.String("config")).Erase(server); err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "Removing login credentials for", server)
				return nil
			},
		},
	}
}

// registryArg is login's and logout's SERVER, as a registry host ("docker.io" by default).
func registryArg(c *cli.Context) string {
	s := c.Args().First()
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), "/v1")
	if s == "" || s == "index.docker.io" || s == "registry-1.docker.io" {
		return credentials.DockerHub
	}
	return strings.TrimSuffix(s, "/")
}

func login(c *cli.Context) error {
	server := registryArg(c)
	user, password := c.String("username"), c.String("password")
	switch {
	case c.Bool("password-stdin"):
		if password != "" {
			return errors.New("--password and --password-stdin are exclusive")
		}
		if user == "" {
			return errors.New("--password-stdin needs --username")
		}
		line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	case password != "":
		fmt.Fprintln(c.App.ErrWriter, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
	default:
		f, ok := c.App.Reader.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return errors.New("no password: pass --password-stdin (or run login on a terminal)")
		}
		if user == "" {
			fmt.Fprint(c.App.Writer, "Username: ")
			line, _ := bufio.NewReader(f).ReadString('\n')
			user = strings.TrimSpace(line)
		}
		fmt.Fprint(c.App.Writer, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.App.Writer)
		if err != nil {
			return err
		}
		password = string(b)
	}
	if user == "" || password == "" {
		return errors.New("login needs a username and a password")
	}
	hostsDir, err := filepath.Abs(c.String("hosts-dir"))
	if err != nil {
		return err
	}
	where, err := runtime.Login(c.Context, hostsDir, credentials.New(c.String("config")), server, user, password)
	if err != nil {
		return fmt.Errorf("login to %s: %w", server, err)
	}
	fmt.Fprintln(c.App.ErrWriter, "credentials stored in", where)
	fmt.Fprintln(c.App.Writer, "Login Succeeded")
	return nil
}

func mirrorCommand() *cli.Command {
	return &cli.Command{
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
	}
}

func mirrorSetup(c *cli.Context) error {
	if err := cliutil.CheckFlags(c, map[string]cliutil.Check{"mirror": cliutil.URLs}); err != nil {
		return err
	}
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
