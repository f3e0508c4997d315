// Command dfget downloads a URL through the P2P network.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	digest "github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/pouch-p2p/pouch/dfget"
	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := app()
	args := append([]string{os.Args[0]}, cliutil.Permute(a.Flags, os.Args[1:])...)
	err := a.RunContext(ctx, args)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, cliutil.Message("dfget", err))
	var e *dfget.Error
	if errors.As(err, &e) {
		os.Exit(e.Code)
	}
	os.Exit(dfget.ExitUsage) // urfave/cli's own errors are about flags
}

func app() *cli.App {
	a := &cli.App{
		Name:      "dfget",
		Version:   version.Get().String(),
		Usage:     "download a URL through the P2P network",
		ArgsUsage: "URL",
		UsageText: "dfget URL -O FILE [--digest sha256:HEX] [-H 'Name: value']... [--timeout 10m]",
		Description: fmt.Sprintf(`Exit codes:
   %d  ok
   %d  other failure (the output cannot be written, the dfdaemon's store failed)
   %d  usage: bad flags, URL or digest
   %d  not found at the origin (404, 410)
   %d  origin unreachable, refused, or not allowed
   %d  the content does not match --digest
   %d  --timeout passed
   %d  disk full: the dfdaemon's data dir, or where the output is written`, dfget.ExitOK, dfget.ExitFailure, dfget.ExitUsage, dfget.ExitNotFound,
			dfget.ExitOrigin, dfget.ExitDigestMismatch, dfget.ExitTimeout, dfget.ExitDiskFull),
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"O"}, Usage: "output file, or - for stdout"},
			&cli.StringFlag{Name: "daemon", Value: "http://127.0.0.1:65001", Usage: "the local dfdaemon"},
			&cli.StringFlag{Name: "supernode", Usage: "without a local dfdaemon: join these supernodes (comma-separated) as a one-shot peer"},
			&cli.StringFlag{Name: "supernode-ca", Usage: "the one-shot peer: PEM bundle of the CA(s) trusted for https:// supernodes, instead of the system roots"},
			&cli.StringFlag{Name: "secret", EnvVars: []string{"POUCH_SECRET"}, Usage: "the one-shot peer: the cluster secret, when the cluster has one"},
			&cli.StringFlag{Name: "data-dir", Usage: "the one-shot peer's store (default: a temporary directory)"},
			&cli.StringFlag{Name: "dfdaemon-bin", EnvVars: []string{"POUCH_DFDAEMON_BIN"}, Usage: "the one-shot peer: the dfdaemon binary that runs it (default: the one next to dfget, else the one on $PATH)"},
			&cli.StringFlag{Name: "digest", Usage: "expected sha256:HEX of the whole file"},
			&cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, Usage: "header sent to the origin, 'Name: value' (repeatable)"},
			&cli.StringFlag{Name: "tag", Usage: "separates tasks for the same URL"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long (0 = never)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		}, append(cliutil.LogFlags("warn"), cliutil.Networks()...)...),
		Action: run,
	}
	cliutil.Conventions(a)
	return a
}

// checks are dfget's flags refused before anything starts.
var checks = func() map[string]cliutil.Check {
	m := cliutil.LogChecks()
	m["daemon"], m["supernode"] = cliutil.URLs, cliutil.URLs
	m["allow-networks"], m["deny-networks"] = cliutil.Prefixes, cliutil.Prefixes
	return m
}()

func run(c *cli.Context) error {
	if c.NArg() != 1 {
		return &dfget.Error{Code: dfget.ExitUsage, Err: fmt.Errorf("exactly one URL is required (got %d arguments)", c.NArg())}
	}
	if err := cliutil.CheckFlags(c, checks); err != nil {
		return &dfget.Error{Code: dfget.ExitUsage, Err: err}
	}
	log, err := cliutil.Logger(c)
	if err != nil {
		return &dfget.Error{Code: dfget.ExitUsage, Err: err}
	}
	defer log.Sync()
	opts := dfget.Options{
		URL: c.Args().First(), Output: c.String("output"), Supernode: c.String("supernode"),
		DataDir: c.String("data-dir"), Digest: digest.Digest(c.String("digest")), Tag: c.String("tag"),
		Timeout: c.Duration("timeout"), Header: http.Header{}, Log: log.Named("dfget"), Notices: os.Stderr,
	}
	// An explicit --supernode without --daemon means: no local daemon, be a one-shot peer.
	if !(c.IsSet("supernode") && !c.IsSet("daemon")) {
		opts.Daemon = c.String("daemon")
	}
	for _, h := range c.StringSlice("header") {
		if err := dfget.ParseHeader(opts.Header, h); err != nil {
			return err
		}
	}
	opts.OneShot = dfget.OneShotConfig{SupernodeCA: c.String("supernode-ca"), Secret: c.String("secret"),
		LogLevel: c.String("log-level"), LogFormat: c.String("log-format"), Dfdaemon: c.String("dfdaemon-bin")}
	if opts.Networks.Allow, opts.Networks.Deny, err = cliutil.ParseNetworks(c); err != nil {
		return &dfget.Error{Code: dfget.ExitUsage, Err: err}
	}
	opts.Progress = !c.Bool("quiet") && opts.Output != "-" && term.IsTerminal(int(os.Stderr.Fd()))
	log.Debug("download", zap.String("url", taskid.Redact(opts.URL, taskid.DefaultFilter)))
	return dfget.Run(c.Context, opts)
}
