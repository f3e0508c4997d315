package cliutil

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/logging"
	"github.com/pouch-p2p/pouch/internal/netguard"
)

// Conventions applies what every binary's command line shares: a bad flag or flag value is one
// line that names it, for the app and each of its subcommands (urfave/cli prints the whole
// help after it otherwise, burying the line that matters).
func Conventions(app *cli.App) {
	app.OnUsageError = usageError
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = usageError
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// flagValueError is the standard flag package's error for a value its flag cannot hold. Both
// patterns are compiled when first needed, on a usage error: at init they cost every dfget
// 0.2 ms, 5 % of its start.
var flagValueError = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -([^:]+): (.*)$`)
})

// envValueError is urfave/cli's error for an environment variable its flag cannot hold.
var envValueError = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^could not parse "(.*)" as \w+ value from environment variable "(\w+)" for flag ([\w-]+): (.*)$`)
})

func usageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := envValueError().FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("$%s: %q is not %s", m[2], m[1], want(lookupFlag(c, m[3]), m[4]))
	}
	if m := flagValueError().FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("--%s: %q is not %s", m[2], m[1], want(lookupFlag(c, m[2]), m[3]))
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return fmt.Errorf("unknown flag --%s (see %s --help)", strings.TrimLeft(name, "-"), c.App.Name)
	}
	return err
}

// lookupFlag finds a flag of the command being run, or of the app.
func lookupFlag(c *cli.Context, name string) cli.Flag {
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	for _, f := range append(flags, c.App.Flags...) {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// want says what a flag of f's type takes; fallback is the parser's own word for the others.
func want(f cli.Flag, fallback string) string {
	switch f.(type) {
	case *cli.DurationFlag:
		return "a duration (e.g. 30s, 5m, 1h30m)"
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return "a whole number"
	case *cli.Float64Flag:
		return "a number"
	case *cli.BoolFlag:
		return "true or false"
	}
	return "valid: " + fallback
}

// Message is the one line a binary prints before it exits non-zero: "bin: what failed". A
// component's errors often start with its own name, which is the binary's: it is not repeated.
func Message(bin string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, bin+": ") {
		return msg
	}
	return bin + ": " + msg
}

// LogFlags are --log-level (default level) and --log-format.
func LogFlags(level string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: level, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: logging.FormatConsole, Usage: "console (for people) or json (one object a line, for log collectors)"},
	}
}

// Logger builds the logger LogFlags ask for.
func Logger(c *cli.Context) (*zap.Logger, error) {
	if _, err := logging.ParseLevel(c.String("log-level")); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if err := logging.CheckFormat(c.String("log-format")); err != nil {
		return nil, fmt.Errorf("--log-format: %w", err)
	}
	return logging.New(c.String("log-level"), c.String("log-format"))
}

// LogChecks check LogFlags' values where they are given.
func LogChecks() map[string]Check {
	return map[string]Check{
		"log-level":  func(s string) error { _, err := logging.ParseLevel(s); return err },
		"log-format": logging.CheckFormat,
	}
}

// URLs checks a comma-separated list of http:// or https:// URLs (--supernode, --daemon), so
// that a typo is refused at start rather than found at the first download.
func URLs(s string) error {
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%q is not an http:// or https:// URL (e.g. http://10.0.0.1:8002)", u)
		}
	}
	return nil
}

// Size checks a size flag's value (ParseBytes); empty means unset.
func Size(s string) error {
	if s == "" {
		return nil
	}
	_, err := ParseBytes(s)
	return err
}

// RateValue checks a rate flag's value (ParseRate).
func RateValue(s string) error {
	_, err := ParseRate(s)
	return err
}

// Prefixes checks a CIDR list (--allow-networks, --deny-networks).
func Prefixes(s string) error {
	_, err := netguard.ParsePrefixes(s)
	return err
}

// HostPort checks a listen address, HOST:PORT (the host may be empty: every interface); empty
// means unset.
func HostPort(s string) error {
	if s == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%q is not HOST:PORT (e.g. 127.0.0.1:8002 or :8002)", s)
	}
	return nil
}
