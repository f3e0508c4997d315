// Command dfdaemon runs the peer on a node: P2P downloads and uploads, the local API for dfget.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/logging"
	"github.com/pouch-p2p/pouch/internal/version"
	"github.com/pouch-p2p/pouch/registryproxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "dfdaemon:", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:    "dfdaemon",
		Version: version.Get().String(),
		Usage:   "the P2P peer on a node: downloads pieces from parents, serves its own, answers dfget",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "supernode", Usage: "supernode URLs, comma-separated, e.g. https://10.0.0.1:8002,https://10.0.0.2:8002 (tasks are spread over them by rendezvous hashing; empty: origin only)"},
			&cli.StringFlag{Name: "supernode-ca", Usage: "PEM bundle of the CA(s) trusted for https:// supernodes, instead of the system roots"},
			&cli.StringFlag{Name: "data-dir", Required: true, Usage: "pieces, index and identity"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:65001", Usage: "local API address (port 0 picks a free port)"},
			&cli.StringFlag{Name: "p2p-listen", Value: dfdaemon.DefaultP2PListen, Usage: "libp2p multiaddr peers on other hosts fetch pieces from (every interface by default)"},
			&cli.StringSliceFlag{Name: "advertise-addrs", Usage: "multiaddrs announced to the supernodes and peers instead of the --p2p-listen addresses (NAT, a container's published port), e.g. /ip4/203.0.113.7/tcp/65002, comma-separated"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "also serve /metrics, /healthz and /readyz, and nothing else, on this address (plain HTTP), e.g. :9101 for a Prometheus on another host; the local API serves them either way"},
			&cli.StringFlag{Name: "upload-rate", Usage: "cap on uploads to all children in bytes/s, e.g. 50MB (" + cliutil.Units + "); empty = none"},
			&cli.StringFlag{Name: "download-rate", Usage: "cap on downloads from all parents in bytes/s, e.g. 50MB; empty = none"},
			&cli.StringFlag{Name: "secret", EnvVars: []string{"POUCH_SECRET"}, Usage: "cluster secret: only nodes holding it join the P2P network and the supernode's API"},
			&cli.StringFlag{Name: "gc-high", Usage: "disk quota: evict least recently used tasks above this size, e.g. 50GiB (" + cliutil.Units + ")"},
			&cli.StringFlag{Name: "gc-low", Usage: "evict down to this size (default 80% of --gc-high)"},
			&cli.DurationFlag{Name: "gc-ttl", Usage: "evict tasks not used for this long (0 = keep)"},
			&cli.DurationFlag{Name: "stall-timeout", Usage: "go back to the origin after this long without P2P progress (default 15s)"},
			&cli.DurationFlag{Name: "heartbeat", Usage: "how often to tell the supernodes this node is alive; their answers bring preheat jobs, so it is also how soon a job reaches the node (default 10s)"},
			&cli.IntFlag{Name: "preheat-concurrency", Usage: "preheat downloads at once, so that warming the cluster does not starve live pulls (default 2)"},
			&cli.BoolFlag{Name: "dht", Value: true, Usage: "join Pouch's DHT, through which nodes find each other's content when no supernode answers (--dht=false: straight to the origin then)"},
			&cli.StringSliceFlag{Name: "bootstrap-peers", Usage: "DHT: peers to join through besides the parents supernodes schedule, multiaddrs ending in /p2p/PEER-ID, comma-separated"},
			&cli.DurationFlag{Name: "dht-reprovide", Usage: "DHT: how often every held task is announced again (default 30m)"},
			&cli.StringFlag{Name: "log-level", Value: "info"},
			&cli.StringFlag{Name: "registry-default", Usage: "registry mirror: upstream HOST[:PORT] for requests without ?ns= (e.g. docker.io)"},
			&cli.StringSliceFlag{Name: "registry-insecure", Usage: "registry mirror: upstreams reached over plain HTTP, HOST[:PORT],..."},
			&cli.StringSliceFlag{Name: "registry-ca", Usage: "registry mirror: HOST=FILE, a PEM CA bundle trusted for that upstream (repeatable)"},
			&cli.StringSliceFlag{Name: "registry-allow", Usage: "registry mirror: the only upstreams served, HOST[:PORT],... (default: any)"},
		}, cliutil.Networks()...),
		Action: run,
	}
}

func run(c *cli.Context) error {
	log, err := logging.New(c.String("log-level"))
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
		host, file, ok := strings.Cut(v, "=")
		if !ok || host == "" || file == "" {
			return cfg, fmt.Errorf("--registry-ca %q: want HOST=FILE", v)
		}
		r := cfg.Registries[host]
		r.CAFile = file
		cfg.Registries[host] = r
	}
	return cfg, cfg.Validate()
}
