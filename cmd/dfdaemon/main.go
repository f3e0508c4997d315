// Command dfdaemon runs the peer on a node: P2P downloads and uploads, the local API for dfget.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/cliutil/daemoncli"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/version"
	"github.com/pouch-p2p/pouch/registryproxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) == 2 && os.Args[1] == dfapi.OneShotArg {
		// dfget ends the one-shot peer by closing their socket. Ctrl-C reaches the whole
		// process group, and a pipe on dfget's stderr may be gone by then (dfget … | tee):
		// either would kill the peer before it removes its store, so both are dfget's to handle.
		signal.Ignore(os.Interrupt, syscall.SIGPIPE)
		code := oneShot(ctx, os.Stdin, os.Stdout)
		stop()
		os.Exit(code)
	}
	if err := app().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, cliutil.Message("dfdaemon", err))
		os.Exit(1)
	}
}

func app() *cli.App {
	// The defaults the daemon applies to zero values, shown by --help and the reference.
	def := dfdaemon.Config{}.WithDefaults()
	a := &cli.App{
		Name:    "dfdaemon",
		Version: version.Get().String(),
		Usage:   "the P2P peer on a node: downloads pieces from parents, serves its own, answers dfget",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "supernode", Usage: "supernode URLs, comma-separated, e.g. https://10.0.0.1:8002,https://10.0.0.2:8002 (tasks are spread over them by rendezvous hashing; empty: origin only)"},
			&cli.StringFlag{Name: "supernode-ca", Usage: "PEM bundle of the CA(s) trusted for https:// supernodes, instead of the system roots"},
			&cli.StringFlag{Name: "data-dir", Usage: "pieces, index and identity (required)"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:65001", Usage: "local API address (port 0 picks a free port)"},
			&cli.StringFlag{Name: "p2p-listen", Value: dfdaemon.DefaultP2PListen, Usage: "libp2p multiaddr peers on other hosts fetch pieces from (every interface by default)"},
			&cli.StringSliceFlag{Name: "advertise-addrs", Usage: "multiaddrs announced to the supernodes and peers instead of the --p2p-listen addresses (NAT, a container's published port), e.g. /ip4/203.0.113.7/tcp/65002, comma-separated"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "also serve /metrics, /healthz and /readyz, and nothing else, on this address (plain HTTP), e.g. :9101 for a Prometheus on another host; the local API serves them either way"},
			&cli.StringFlag{Name: "upload-rate", Usage: "cap on uploads to all children in bytes/s, e.g. 50MB (" + cliutil.Units + "); empty = none"},
			&cli.StringFlag{Name: "download-rate", Usage: "cap on downloads from all parents in bytes/s, e.g. 50MB; empty = none"},
			&cli.StringFlag{Name: "secret", Usage: "cluster secret: only nodes holding it join the P2P network and the supernode's API"},
			&cli.StringFlag{Name: "gc-high", Usage: "disk quota: evict least recently used tasks above this size, e.g. 50GiB (" + cliutil.Units + ")"},
			&cli.StringFlag{Name: "gc-low", Usage: "evict down to this size (empty: 80% of --gc-high)"},
			&cli.DurationFlag{Name: "gc-ttl", Usage: "evict tasks not used for this long (0 = keep)"},
			&cli.DurationFlag{Name: "stall-timeout", Value: def.StallTimeout, Usage: "go back to the origin after this long without P2P progress"},
			&cli.DurationFlag{Name: "heartbeat", Value: def.Heartbeat, Usage: "how often to tell the supernodes this node is alive; their answers bring preheat jobs, so it is also how soon a job reaches the node"},
			&cli.IntFlag{Name: "preheat-concurrency", Value: def.PreheatConcurrency, Usage: "preheat downloads at once, so that warming the cluster does not starve live pulls"},
			&cli.BoolFlag{Name: "dht", Value: true, Usage: "join Pouch's DHT, through which nodes find each other's content when no supernode answers (--dht=false: straight to the origin then)"},
			&cli.StringSliceFlag{Name: "bootstrap-peers", Usage: "DHT: peers to join through besides the parents supernodes schedule, multiaddrs ending in /p2p/PEER-ID, comma-separated"},
			&cli.DurationFlag{Name: "dht-reprovide", Value: def.DHT.Reprovide, Usage: "DHT: how often every held task is announced again"},
			&cli.StringFlag{Name: "registry-default", Usage: "registry mirror: upstream HOST[:PORT] for requests without ?ns= (e.g. docker.io)"},
			&cli.StringSliceFlag{Name: "registry-insecure", Usage: "registry mirror: upstreams reached over plain HTTP, HOST[:PORT],..."},
			&cli.StringSliceFlag{Name: "registry-ca", Usage: "registry mirror: HOST=FILE, a PEM CA bundle trusted for that upstream (repeatable)"},
			&cli.StringSliceFlag{Name: "registry-allow", Usage: "registry mirror: the only upstreams served, HOST[:PORT],... (empty: any)"},
		}, append(cliutil.LogFlags("info"), cliutil.Networks()...)...),
		Action: run,
	}
	checks := daemoncli.Checks()
	checks["supernode"] = cliutil.URLs
	checks["download-rate"] = cliutil.RateValue
	checks["bootstrap-peers"] = daemoncli.Multiaddr
	checks["registry-ca"] = func(v string) error { _, _, err := registryCA(v); return err }
	cliutil.Daemon(a, checks)
	cliutil.Conventions(a)
	return a
}

func run(c *cli.Context) error {
	if c.String("data-dir") == "" {
		return errors.New("--data-dir is required (or $POUCH_DATA_DIR, or data-dir in the --config file)")
	}
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	defer log.Sync()
	cfg := dfdaemon.Config{
		Supernode: c.String("supernode"), SupernodeCA: c.String("supernode-ca"), DataDir: c.String("data-dir"), Listen: c.String("listen"),
		MetricsListen: c.String("metrics-listen"),
		P2PListen:     c.String("p2p-listen"), AdvertiseAddrs: cliutil.List(c.StringSlice("advertise-addrs")), Secret: c.String("secret"), StallTimeout: c.Duration("stall-timeout"),
		Heartbeat: c.Duration("heartbeat"), PreheatConcurrency: c.Int("preheat-concurrency"),
		DHT: dfdaemon.DHTConfig{Disabled: !c.Bool("dht"), BootstrapPeers: cliutil.List(c.StringSlice("bootstrap-peers")), Reprovide: c.Duration("dht-reprovide")},
	}
	if cfg.UploadRate, err = cliutil.Rate(c, "upload-rate"); err != nil {
		return err
	}
	if cfg.DownloadRate, err = cliutil.Rate(c, "download-rate"); err != nil {
		return err
	}
	if cfg.Allow, cfg.Deny, err = cliutil.ParseNetworks(c); err != nil {
		return err
	}
	for name, dst := range map[string]*int64{"gc-high": &cfg.GC.High, "gc-low": &cfg.GC.Low} {
		if v := c.String(name); v != "" {
			if *dst, err = cliutil.ParseBytes(v); err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
		}
	}
	cfg.GC.TTL = c.Duration("gc-ttl")
	mirror, err := mirrorConfig(c)
	if err != nil {
		return err
	}
	d, err := dfdaemon.New(cfg, log)
	if err != nil {
		return err
	}
	if _, err := d.MountMirror(mirror); err != nil {
		return err
	}
	cliutil.Ready(os.Stdout, d.Addr(), d.P2PAddrs(), cliutil.MetricsField(d.MetricsAddr())...)
	return d.Run(c.Context)
}

// mirrorConfig reads the --registry-* flags.
func mirrorConfig(c *cli.Context) (registryproxy.Config, error) {
	cfg := registryproxy.Config{Default: c.String("registry-default"), Registries: map[string]registryproxy.RegistryConfig{}}
	cfg.Allowed = cliutil.List(c.StringSlice("registry-allow"))
	for _, h := range cliutil.List(c.StringSlice("registry-insecure")) {
		r := cfg.Registries[h]
		r.Insecure = true
		cfg.Registries[h] = r
	}
	for _, v := range c.StringSlice("registry-ca") {
		host, file, err := registryCA(v)
		if err != nil {
			return cfg, fmt.Errorf("--registry-ca: %w", err)
		}
		r := cfg.Registries[host]
		r.CAFile = file
		cfg.Registries[host] = r
	}
	return cfg, cfg.Validate()
}

// registryCA splits a --registry-ca value, HOST=FILE.
func registryCA(v string) (host, file string, err error) {
	host, file, ok := strings.Cut(v, "=")
	if !ok || host == "" || file == "" {
		return "", "", fmt.Errorf("%q: want HOST=FILE", v)
	}
	return host, file, nil
}
