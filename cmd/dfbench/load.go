package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/bench"
	"github.com/pouch-p2p/pouch/internal/cliutil"
)

func loadCommand() *cli.Command {
	def := bench.LoadConfig{}.WithDefaults()
	return &cli.Command{
		Name:      "load",
		Usage:     "one supernode process scheduling many simulated peers that speak its real API (control-plane scale)",
		UsageText: "dfbench load [--peers 10000] [--tasks 4] [--size 64MiB] [--download-rate 8MB] [--conns 256] [--ramp 10s] [--sync-interval 1s] [--out DIR]",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "peers", Value: def.Peers, Usage: "simulated peers, each with its own identity"},
			&cli.IntFlag{Name: "tasks", Value: def.Tasks, Usage: "tasks every peer downloads in turn (an image's layers)"},
			&cli.StringFlag{Name: "size", Value: "64MiB", Usage: "each task's size (" + cliutil.Units + ")"},
			&cli.StringFlag{Name: "download-rate", Value: "8MB", Usage: "bytes/s each peer reports receiving"},
			&cli.IntFlag{Name: "conns", Value: def.Conns, Usage: "HTTP connections the simulated peers share"},
			&cli.DurationFlag{Name: "ramp", Value: def.Ramp, Usage: "the peers join evenly over this long (a rollout); negative: all at the same instant"},
			&cli.DurationFlag{Name: "sync-interval", Value: def.SyncInterval, Usage: "how often each peer syncs (the dfdaemon's pace by default)"},
			&cli.DurationFlag{Name: "heartbeat", Value: def.Heartbeat, Usage: "how often each peer heartbeats (the dfdaemon's default)"},
			&cli.DurationFlag{Name: "timeout", Value: def.Timeout, Usage: "give up after this long"},
			&cli.StringFlag{Name: "bin-dir", Usage: "where supernode is (default: next to dfbench)"},
			&cli.StringFlag{Name: "work-dir", Usage: "keep the supernode's data and log here (default: a temporary directory, removed)"},
			&cli.StringFlag{Name: "out", Usage: "directory for " + bench.LoadFile},
		},
		Action: loadCmd,
	}
}

func loadCmd(c *cli.Context) error {
	cfg := bench.LoadConfig{Peers: c.Int("peers"), Tasks: c.Int("tasks"), Conns: c.Int("conns"), Ramp: c.Duration("ramp"), SyncInterval: c.Duration("sync-interval"),
		Heartbeat: c.Duration("heartbeat"), Timeout: c.Duration("timeout"), WorkDir: c.String("work-dir")}
	var err error
	if cfg.Size, err = cliutil.ParseBytes(c.String("size")); err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	if cfg.DownloadRate, err = cliutil.ParseRate(c.String("download-rate")); err != nil {
		return fmt.Errorf("--download-rate: %w", err)
	}
	if cfg.BinDir, err = binDir(c); err != nil {
		return err
	}
	res, err := bench.Load(c.Context, cfg)
	if err != nil && res.Register.Calls == 0 {
		return err
	}
	if werr := bench.WriteLoad(os.Stdout, res); werr != nil {
		return werr
	}
	if dir := c.String("out"); dir != "" {
		if werr := bench.WriteLoadDir(dir, res); werr != nil {
			return werr
		}
		fmt.Println("wrote", filepath.Join(dir, bench.LoadFile))
	}
	return err
}
