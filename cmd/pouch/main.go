// Command pouch pulls images through the node's registry mirror and runs them on containerd,
// with docker's commands and flags for what it does (docs/runtime.md).
//
// Exit status, as docker's: a container's own exit code for "pouch run" (and "pouch exec");
// 125 when pouch itself fails (containerd missing, image not found, bad usage); 126 when the
// container's command cannot be executed; 127 when it is not found; 0 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pouch-p2p/pouch/runtime"
)

// Docker's exit statuses for failures that are not the container's own exit code.
const (
	exitPouchFailed     = 125
	exitCannotExecute   = 126
	exitCommandNotFound = 127
)

func main() {
	// The shim runs pouch as a detached container's logger, and pouch runs itself as its
	// supervisor: neither returns.
	runtime.HelperMain(os.Args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	var exit *containerExit
	if errors.As(err, &exit) {
		os.Exit(exit.code)
	}
	fmt.Fprintln(os.Stderr, "pouch:", err)
	os.Exit(exitCode(err))
}

// exitCode is docker's status for a failure of pouch's.
func exitCode(err error) int {
	switch {
	case errors.Is(err, runtime.ErrCommandNotFound):
		return exitCommandNotFound
	case errors.Is(err, runtime.ErrCannotExecute):
		return exitCannotExecute
	}
	return exitPouchFailed
}
