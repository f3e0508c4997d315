// Command pouch pulls images through the node's registry mirror and runs them on containerd.
//
// Exit status: a container's own exit code for "pouch run"; 125 when pouch itself fails
// (containerd missing, image not found, bad usage); 0 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitPouchFailed is pouch's status when the failure is pouch's, not the container's
// (Docker's convention, so a container's own codes stay distinguishable).
const exitPouchFailed = 125

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	var exit *containerExit
	if errors.As(err, &exit) {
		os.Exit(exit.code)
	}
	fmt.Fprintln(os.Stderr, "pouch:", err)
	os.Exit(exitPouchFailed)
}
