// Package deploytest is what the deploy/ tests share: the Pouch binaries built from the module
// they deploy, the flags a binary's --help lists, and daemons started as processes. The chart,
// the systemd units, the dashboard and the image are all checked against the real binaries.
package deploytest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
)

// ModuleDir is the Pouch module's root as seen from a test under deploy/<pkg>/.
const ModuleDir = "../.."

// flagName finds the long names in a urfave/cli help line such as
// "   --output value, -O value  output file".
var flagName = regexp.MustCompile(`(?:^|[\s,])--([a-z0-9][a-z0-9-]*)`)

// Help is what `bin args... --help` says.
type Help struct {
	Flags map[string]bool // long flag names
	Text  string          // the whole help, which also names each flag's environment variable
}

// GetHelp runs `bin args... --help` (args selects a subcommand, e.g. "mirror", "setup").
func GetHelp(ctx context.Context, bin string, args ...string) (Help, error) {
	out, err := exec.CommandContext(ctx, bin, append(args, "--help")...).CombinedOutput()
	if err != nil {
		return Help{}, fmt.Errorf("%s %s --help: %w\n%s", bin, strings.Join(args, " "), err, out)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "-") {
			continue // usage text and descriptions also mention flags
		}
		for _, m := range flagName.FindAllStringSubmatch(line, -1) {
			flags[m[1]] = true
		}
	}
	if len(flags) == 0 {
		return Help{}, fmt.Errorf("%s %s --help lists no flags:\n%s", bin, strings.Join(args, " "), out)
	}
	return Help{Flags: flags, Text: string(out)}, nil
}

// Start runs a daemon binary, waits for its ready line and stops it when the test ends,
// printing its log if the test failed.
func Start(t testing.TB, name, bin string, args ...string) *daemon.Proc {
	t.Helper()
	return StartEnv(t, name, bin, nil, args...)
}

// StartEnv is Start with variables (NAME=VALUE) added to the daemon's environment, as a pod
// spec's env sets them.
func StartEnv(t testing.TB, name, bin string, env []string, args ...string) *daemon.Proc {
	t.Helper()
	// A test that starts the daemon from a config file sets its libp2p address there (the chart's
	// and the examples' name a supernode on another host, so loopback alone would be refused).
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--config") }) {
		args = daemon.LoopbackP2P(args)
	}
	if len(env) > 0 {
		// The fixture starts a path with arguments; env(1) puts the variables in between.
		args = slices.Concat(env, []string{bin}, args)
		bin = "/usr/bin/env"
	}
	var mu sync.Mutex
	var log bytes.Buffer
	p, err := daemon.Start(context.Background(), name, bin, args, writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return log.Write(b)
	}))
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			mu.Lock()
			t.Logf("--- %s log ---\n%s", name, log.String())
			mu.Unlock()
		}
	})
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%v\n%s", err, log.String())
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Main is a test binary's TestMain: it builds every command into a temporary directory, sets
// *binDir to it, runs the tests and removes it. A failed build fails the test binary. It builds
// with the default settings, as the main module's end-to-end tests do, so that in `make test`
// the go build cache they filled serves it.
func Main(m *testing.M, binDir *string) {
	daemon.BuildMain(m, ModuleDir, binDir, "supernode", "dfdaemon", "dfget", "pouch", "dfbench")
}
