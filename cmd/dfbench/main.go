// Command dfbench measures Pouch on N simulated nodes on one machine against the Kumar–Ross
// minimum distribution time and against every node pulling from the origin (see package bench).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/bench"
	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, cliutil.Message("dfbench", err))
		stop()
		os.Exit(1)
	}
}

func workloadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "nodes", Value: 8, Usage: "number of nodes N"},
		&cli.StringFlag{Name: "size", Value: "64MiB", Usage: "content size F (" + cliutil.Units + ")"},
		&cli.StringFlag{Name: "upload-rate", Value: "20MB", Usage: "every node's upload cap in bytes/s (" + cliutil.Units + ")"},
		&cli.StringFlag{Name: "download-rate", Value: "20MB", Usage: "every node's download cap in bytes/s"},
		&cli.StringFlag{Name: "seed-rate", Usage: "the seed's upload cap (default: --upload-rate)"},
		&cli.StringFlag{Name: "origin-rate", Usage: "the origin's upload cap, all connections together (default: --upload-rate)"},
		&cli.StringFlag{Name: "mode", Value: bench.ModeBurst, Usage: "burst (all nodes at once) or waves (20% of the nodes at a time)"},
		&cli.BoolFlag{Name: "baseline", Usage: "also run the workload with every node pulling from the origin"},
		&cli.StringFlag{Name: "out", Usage: "directory for result.json and completion.svg"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the content generator and the simulator"},
	}
}

func app() *cli.App {
	a := &cli.App{
		Name:    "dfbench",
		Version: version.Get().String(),
		Usage:   "measure Pouch against the Kumar–Ross bound and against origin-only pulls",
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "start an origin, a supernode and N dfdaemons on loopback and pull on every node",
				UsageText: "dfbench run [--nodes N] [--size BYTES] [--layers K] [--upload-rate R] [--download-rate R] [--origin-rate R] [--mode burst|waves] [--baseline] [--netns] [--out DIR]",
				Flags: append(workloadFlags(),
					&cli.StringFlag{Name: "bin-dir", Usage: "where supernode, dfdaemon and dfget are (default: next to dfbench)"},
					&cli.StringFlag{Name: "work-dir", Usage: "keep the daemons' data and logs here (default: a temporary directory, removed)"},
					&cli.StringFlag{Name: "max-throughput", Value: "400MB", Usage: "total capped throughput this machine can carry in bytes/s; larger configurations are refused"},
					&cli.DurationFlag{Name: "timeout", Value: bench.Config{}.WithDefaults().Timeout, Usage: "give up on a phase after this long"},
					&cli.IntFlag{Name: "layers", Usage: "image workload: K random layers of --size in total, pulled through every node's registry mirror (0: one file with dfget)"},
					&cli.BoolFlag{Name: "timeline", Usage: "sample every daemon's byte counters every 250 ms; print where each node's time went (before its first byte, receiving, after its last) and write them in result.json and timeline.svg"},
					&cli.BoolFlag{Name: "netns", Usage: "each node in its own network namespace on a bridge (10.213.0.0/16), capped by tc on its veth pair instead of the daemons' flags (root only; removed after the run, also when interrupted)"},
				),
				Action: runCmd,
			},
			{
				Name:      "sim",
				Usage:     "discrete-event simulation driving the real scheduler, no sockets",
				UsageText: "dfbench sim [--nodes N] [--size BYTES] [--piece-size S] [--upload-rate R] [--download-rate R] [--origin-rate R] [--mode burst|waves] [--baseline] [--out DIR]",
				Flags: append(workloadFlags(),
					&cli.StringFlag{Name: "piece-size", Usage: "piece size (default: the daemons' policy for --size)"}),
				Action: simCmd,
			},
			{
				Name:      "demo",
				Usage:     "a local cluster on loopback: an embedded registry, a supernode and dfdaemons; the image pulled through every mirror, then run with pouch",
				UsageText: "dfbench demo [--nodes 3] [--layer-size 64MiB]",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "nodes", Value: 3, Usage: "dfdaemons"},
					&cli.StringFlag{Name: "layer-size", Value: "64MiB", Usage: "size of the random layer added to the busybox image (" + cliutil.Units + ")"},
					&cli.StringFlag{Name: "bin-dir", Usage: "where supernode, dfdaemon and pouch are (default: next to dfbench)"},
				},
				Action: demoCmd,
			},
			{
				Name:      "preheat",
				Usage:     "time live pulls through the mirrors alone and while a preheat job warms another image on every node",
				UsageText: "dfbench preheat [--nodes 8] [--layers 4] [--size 256MiB] [--pullers 2] [--live-layers 2] [--live-size 64MiB] [--preheat-concurrency N] [--runs 3] [--out DIR]",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "nodes", Value: 8, Usage: "dfdaemons, all preheated"},
					&cli.IntFlag{Name: "layers", Value: 4, Usage: "layers of the preheated image"},
					&cli.StringFlag{Name: "size", Value: "256MiB", Usage: "the preheated image's layers in all (" + cliutil.Units + ")"},
					&cli.IntFlag{Name: "pullers", Value: 2, Usage: "nodes that pull another image through their mirror during the preheat"},
					&cli.IntFlag{Name: "live-layers", Value: 2, Usage: "layers of the pulled image"},
					&cli.StringFlag{Name: "live-size", Value: "64MiB", Usage: "the pulled image's layers in all"},
					&cli.IntFlag{Name: "preheat-concurrency", Usage: "the dfdaemons' --preheat-concurrency (0: theirs)"},
					&cli.IntFlag{Name: "runs", Value: 3, Usage: "repetitions"},
					&cli.StringFlag{Name: "upload-rate", Value: "20MB", Usage: "every node's upload cap in bytes/s"},
					&cli.StringFlag{Name: "download-rate", Value: "20MB", Usage: "every node's download cap in bytes/s"},
					&cli.StringFlag{Name: "seed-rate", Usage: "the seed's upload cap (default: --upload-rate)"},
					&cli.StringFlag{Name: "origin-rate", Value: "100MB", Usage: "the registry's upload cap, all connections together"},
					&cli.StringFlag{Name: "bin-dir", Usage: "where supernode and dfdaemon are (default: next to dfbench)"},
					&cli.StringFlag{Name: "work-dir", Usage: "keep the daemons' data and logs here (default: a temporary directory, removed)"},
					&cli.StringFlag{Name: "out", Usage: "directory for preheat.json"},
				},
				Action: preheatCmd,
			},
			loadCommand(),
			{
				Name:      "tiny",
				Usage:     "time dfget of small files that a peer holds, end to end, next to a plain HTTP GET of each from the origin",
				UsageText: "dfbench tiny [--size 1KiB] [--count 50] [--out DIR]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "size", Value: "1KiB", Usage: "size of each file (" + cliutil.Units + ")"},
					&cli.IntFlag{Name: "count", Value: 50, Usage: "files, each fetched and timed once"},
					&cli.StringFlag{Name: "bin-dir", Usage: "where supernode, dfdaemon and dfget are (default: next to dfbench)"},
					&cli.StringFlag{Name: "work-dir", Usage: "keep the daemons' data and logs here (default: a temporary directory, removed)"},
					&cli.StringFlag{Name: "out", Usage: "directory for tiny.json"},
				},
				Action: tinyCmd,
			},
			{
				Name:      "report",
				Usage:     "put several runs in one table and one plot of completion time against N",
				UsageText: "dfbench report [--out DIR] DIR...",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "out", Value: ".", Usage: "directory for report.svg"}},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return errors.New("report: name at least one directory holding a result.json")
					}
					if err := bench.WriteReport(os.Stdout, c.String("out"), c.Args().Slice()); err != nil {
						return err
					}
					fmt.Println("plot:", filepath.Join(c.String("out"), bench.ReportPlot))
					return nil
				},
			},
		},
	}
	cliutil.Conventions(a)
	return a
}

func config(c *cli.Context) (bench.Config, error) {
	cfg := bench.Config{Nodes: c.Int("nodes"), Mode: c.String("mode"), Baseline: c.Bool("baseline"), Seed: c.Uint64("seed")}
	var err error
	if cfg.Size, err = cliutil.ParseBytes(c.String("size")); err != nil {
		return cfg, fmt.Errorf("--size: %w", err)
	}
	if c.IsSet("piece-size") {
		if cfg.PieceSize, err = cliutil.ParseBytes(c.String("piece-size")); err != nil {
			return cfg, fmt.Errorf("--piece-size: %w", err)
		}
	}
	for name, dst := range map[string]*int64{"upload-rate": &cfg.UploadRate, "download-rate": &cfg.DownloadRate, "seed-rate": &cfg.SeedRate, "origin-rate": &cfg.OriginRate} {
		if *dst, err = cliutil.ParseRate(c.String(name)); err != nil {
			return cfg, fmt.Errorf("--%s: %w", name, err)
		}
	}
	cfg = cfg.WithDefaults()
	return cfg, cfg.Validate()
}

// binDir is --bin-dir, or the directory dfbench itself is in.
func binDir(c *cli.Context) (string, error) {
	if d := c.String("bin-dir"); d != "" {
		return d, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}

func demoCmd(c *cli.Context) error {
	cfg := bench.DemoConfig{Nodes: c.Int("nodes")}
	var err error
	if cfg.BinDir, err = binDir(c); err != nil {
		return err
	}
	if cfg.LayerBytes, err = cliutil.ParseBytes(c.String("layer-size")); err != nil {
		return fmt.Errorf("--layer-size: %w", err)
	}
	if cfg.Nodes < 1 {
		return errors.New("--nodes must be at least 1")
	}
	if cfg.WorkDir, err = os.MkdirTemp("", "pouch-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.WorkDir)
	return bench.Demo(c.Context, cfg, os.Stdout)
}

func runCmd(c *cli.Context) error {
	cfg, err := config(c)
	if err != nil {
		return err
	}
	cfg.WorkDir, cfg.Timeout, cfg.Netns, cfg.Timeline = c.String("work-dir"), c.Duration("timeout"), c.Bool("netns"), c.Bool("timeline")
	cfg.Layers = c.Int("layers")
	if cfg.BinDir, err = binDir(c); err != nil {
		return err
	}
	mt, err := cliutil.ParseRate(c.String("max-throughput"))
	if err != nil {
		return fmt.Errorf("--max-throughput: %w", err)
	}
	cfg.MaxThroughput = float64(mt)
	res, err := bench.Run(c.Context, cfg)
	if err != nil && !errors.Is(err, bench.ErrNodesFailed) {
		return err
	}
	if werr := output(c, res); werr != nil {
		return werr
	}
	return err
}

func preheatCmd(c *cli.Context) error {
	cfg := bench.PreheatConfig{
		Nodes: c.Int("nodes"), Layers: c.Int("layers"), Pullers: c.Int("pullers"), LiveLayers: c.Int("live-layers"),
		Concurrency: c.Int("preheat-concurrency"), Runs: c.Int("runs"), WorkDir: c.String("work-dir"),
	}
	var err error
	if cfg.BinDir, err = binDir(c); err != nil {
		return err
	}
	for name, dst := range map[string]*int64{"size": &cfg.Size, "live-size": &cfg.LiveSize} {
		if *dst, err = cliutil.ParseBytes(c.String(name)); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	for name, dst := range map[string]*int64{"upload-rate": &cfg.UploadRate, "download-rate": &cfg.DownloadRate, "seed-rate": &cfg.SeedRate, "origin-rate": &cfg.OriginRate} {
		if *dst, err = cliutil.ParseRate(c.String(name)); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	res, err := bench.Preheat(c.Context, cfg)
	if err != nil {
		return err
	}
	if err := bench.WritePreheat(os.Stdout, res); err != nil {
		return err
	}
	if dir := c.String("out"); dir != "" {
		if err := bench.WritePreheatDir(dir, res); err != nil {
			return err
		}
		fmt.Println("wrote", filepath.Join(dir, bench.PreheatFile))
	}
	return nil
}

func tinyCmd(c *cli.Context) error {
	cfg := bench.TinyConfig{Count: c.Int("count"), WorkDir: c.String("work-dir")}
	var err error
	if cfg.BinDir, err = binDir(c); err != nil {
		return err
	}
	if cfg.Size, err = cliutil.ParseBytes(c.String("size")); err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	res, err := bench.Tiny(c.Context, cfg)
	if err != nil {
		return err
	}
	if err := bench.WriteTiny(os.Stdout, res); err != nil {
		return err
	}
	if dir := c.String("out"); dir != "" {
		if err := bench.WriteTinyDir(dir, res); err != nil {
			return err
		}
		fmt.Println("wrote", filepath.Join(dir, bench.TinyFile))
	}
	return res.Check()
}

func simCmd(c *cli.Context) error {
	cfg, err := config(c)
	if err != nil {
		return err
	}
	return output(c, bench.Simulate(cfg))
}

func output(c *cli.Context, res bench.Result) error {
	if err := bench.WriteTable(os.Stdout, res); err != nil {
		return err
	}
	if dir := c.String("out"); dir != "" {
		if err := bench.WriteDir(dir, res); err != nil {
			return err
		}
		fmt.Println("wrote", filepath.Join(dir, bench.ResultFile), "and", filepath.Join(dir, bench.PlotFile))
	}
	return nil
}
