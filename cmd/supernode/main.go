// Command supernode runs the cluster's scheduler and seed.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/cliutil/daemoncli"
	"github.com/pouch-p2p/pouch/internal/version"
	"github.com/pouch-p2p/pouch/supernode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, cliutil.Message("supernode", err))
		os.Exit(1)
	}
}

func app() *cli.App {
	a := &cli.App{
		Name:    "supernode",
		Version: version.Get().String(),
		Usage:   "schedule pieces across a cluster's dfdaemons and seed every task from its origin once",
		UsageText: "supernode --data-dir DIR [--listen ADDR] [flags]     run the supernode\n" +
			"supernode preheat [flags] REF|URL                    warm an image or a file (see supernode preheat --help)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8002", Usage: "HTTP API address (port 0 picks a free port)"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "also serve /metrics, /healthz and /readyz, and nothing else, on this address (plain HTTP even with TLS), e.g. :9102; the API serves them either way"},
			&cli.StringFlag{Name: "data-dir", Usage: "seed pieces, task index, preheat jobs and identity (required)"},
			&cli.StringFlag{Name: "p2p-listen", Value: supernode.DefaultP2PListen, Usage: "the seed's libp2p multiaddr, which peers on other hosts fetch pieces from (every interface by default)"},
			&cli.StringSliceFlag{Name: "advertise-addrs", Usage: "multiaddrs the seed is handed to peers at instead of the --p2p-listen addresses (NAT, a container's published port), e.g. /ip4/203.0.113.5/tcp/8003, comma-separated"},
			&cli.StringFlag{Name: "upload-rate", Usage: "cap on the seed's upload in bytes/s, e.g. 100MB (" + cliutil.Units + "); empty = none"},
			&cli.StringFlag{Name: "secret", Usage: "cluster secret: only nodes holding it join the P2P network and the API (without one the cluster is open)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain) for the API: serve https (with --tls-key)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert"},
			&cli.StringFlag{Name: "admin-token", Usage: "bearer token (or Basic password, for a browser) required by the admin views (task listing and deletion, preheat jobs, the status page at /); without one they answer only loopback clients"},
			&cli.StringSliceFlag{Name: "registry-insecure", Usage: "preheat: registries reached over plain HTTP, HOST[:PORT],..."},
			&cli.StringFlag{Name: "gc-high", Usage: "disk quota of the seed's store: evict least recently used tasks not in use above this size, e.g. 500GiB (" + cliutil.Units + ")"},
			&cli.StringFlag{Name: "gc-low", Usage: "evict down to this size (empty: 80% of --gc-high)"},
			&cli.DurationFlag{Name: "gc-ttl", Usage: "evict tasks not used for this long (0 = keep)"},
			&cli.StringFlag{Name: "spool-max", Value: "10GiB", Usage: "disk that origins without Content-Length may take while they are spooled, all together; such an origin beyond it is refused (" + cliutil.Units + ")"},
		}, append(cliutil.LogFlags("info"), cliutil.Networks()...)...),
		Commands: []*cli.Command{preheatCommand()},
		Action:   run,
	}
	checks := daemoncli.Checks()
	checks["spool-max"] = cliutil.Size
	cliutil.Daemon(a, checks)
	cliutil.Conventions(a)
	return a
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unknown command %q: the supernode runs without arguments; see supernode --help", c.Args().First())
	}
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	defer log.Sync()
	up, err := cliutil.Rate(c, "upload-rate")
	if err != nil {
		return err
	}
	allow, deny, err := cliutil.ParseNetworks(c)
	if err != nil {
		return err
	}
	cfg := supernode.Config{
		Listen: c.String("listen"), MetricsListen: c.String("metrics-listen"), DataDir: c.String("data-dir"), P2PListen: c.String("p2p-listen"),
		AdvertiseAddrs: cliutil.List(c.StringSlice("advertise-addrs")),
		UploadRate:     up, Secret: c.String("secret"), AdminToken: c.String("admin-token"), Allow: allow, Deny: deny,
		TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"), RegistryInsecure: cliutil.List(c.StringSlice("registry-insecure")),
		GC: supernode.GCConfig{TTL: c.Duration("gc-ttl")},
	}
	for name, dst := range map[string]*int64{"gc-high": &cfg.GC.High, "gc-low": &cfg.GC.Low, "spool-max": &cfg.SpoolMax} {
		if v := c.String(name); v != "" {
			if *dst, err = cliutil.ParseBytes(v); err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
		}
	}
	s, err := supernode.New(cfg, log)
	if err != nil {
		return err
	}
	cliutil.Ready(os.Stdout, s.Addr(), s.P2PAddrs(), cliutil.MetricsField(s.MetricsAddr())...)
	return s.Run(c.Context)
}
