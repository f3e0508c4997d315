package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/logging"
)

// oneShot is "dfdaemon oneshot-peer": the one-shot peer that dfget starts for one download when
// there is no local dfdaemon (dfapi.OneShot says how the two speak). It is not for people, so
// it takes no flags and reads no POUCH_* variable or config file: dfget's settings alone apply.
// It returns the exit code.
func oneShot(ctx context.Context, stdin io.Reader, stdout io.Writer) int {
	// The reason the peer cannot start is dfget's message to its user: one line on stdout.
	startFailed := func(err error) int {
		fmt.Fprintln(stdout, strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	var o dfapi.OneShot
	dec := json.NewDecoder(io.LimitReader(stdin, dfapi.MaxBody))
	dec.DisallowUnknownFields() // a setting this binary does not know must not be dropped silently
	if err := dec.Decode(&o); err != nil {
		return startFailed(fmt.Errorf("dfdaemon %s: reading its settings from stdin (it is started by dfget): %w", dfapi.OneShotArg, err))
	}
	f := os.NewFile(dfapi.OneShotFD, "dfget")
	if f == nil {
		return startFailed(fmt.Errorf("dfdaemon %s: no file descriptor %d (it is started by dfget)", dfapi.OneShotArg, dfapi.OneShotFD))
	}
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return startFailed(fmt.Errorf("dfdaemon %s: file descriptor %d is not dfget's socket: %w", dfapi.OneShotArg, dfapi.OneShotFD, err))
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, dfapi.OneShotHello); err != nil {
		return startFailed(fmt.Errorf("dfdaemon %s: greeting dfget: %w", dfapi.OneShotArg, err))
	}
	level, format := o.LogLevel, o.LogFormat
	if level == "" {
		level = "warn"
	}
	if format == "" {
		format = logging.FormatConsole
	}
	log, err := logging.New(level, format)
	if err != nil {
		return startFailed(err)
	}
	defer log.Sync()
	log = log.Named("dfget") // the name dfget's own lines carry: to its user this is dfget
	cfg := dfdaemon.OneShotConfig(o)
	if cfg.DataDir == "" {
		tmp, err := os.MkdirTemp("", "dfget-")
		if err != nil {
			return startFailed(err)
		}
		defer os.RemoveAll(tmp)
		cfg.DataDir = tmp
	}
	d, err := dfdaemon.New(cfg, log)
	if err != nil {
		return startFailed(err)
	}
	if err := d.ServeConn(ctx, conn); err != nil {
		log.Error("one-shot peer", zap.Error(err))
		return 1
	}
	return 0
}
