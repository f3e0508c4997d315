// Package cliutil holds what the thin mains share: flag-order freedom, the flags every daemon
// takes, and the one line a daemon prints when it is ready.
package cliutil

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/internal/netguard"
)

// Permute moves positional arguments after the flags, so "dfget URL -O f" parses like
// "dfget -O f URL": urfave/cli stops at the first positional argument otherwise. args excludes
// the program name. A "--" ends flag parsing as usual.
func Permute(flags []cli.Flag, args []string) []string {
	takesValue := map[string]bool{}
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		for _, n := range f.Names() {
			takesValue[n] = true
		}
	}
	var fl, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case a == "-" || !strings.HasPrefix(a, "-"):
			pos = append(pos, a)
		default:
			fl = append(fl, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(args) {
				fl = append(fl, args[i+1])
				i++
			}
		}
	}
	if len(pos) == 0 {
		return fl
	}
	return append(append(fl, "--"), pos...)
}

// Networks returns the --allow-networks and --deny-networks flags.
func Networks() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "allow-networks", Usage: "CIDRs the origin may be in although the SSRF policy refuses them (e.g. 127.0.0.0/8)"},
		&cli.StringFlag{Name: "deny-networks", Usage: "CIDRs the origin may not be in (private ranges are allowed by default)"},
	}
}

// ParseNetworks reads the two network flags.
func ParseNetworks(c *cli.Context) (allow, deny []netip.Prefix, err error) {
	if allow, err = netguard.ParsePrefixes(c.String("allow-networks")); err != nil {
		return nil, nil, err
	}
	deny, err = netguard.ParsePrefixes(c.String("deny-networks"))
	return allow, deny, err
}

// List trims each value of a list flag (urfave/cli splits "a, b" at commas) and drops the
// empty ones.
func List(values []string) []string {
	var out []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Rate reads a rate flag such as "20MB" (bytes per second).
func Rate(c *cli.Context, name string) (int64, error) {
	r, err := ParseRate(c.String(name))
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	return r, nil
}

// Ready prints the line that tells scripts and tests where a daemon listens; it is the only
// thing a daemon writes to stdout. Extra fields follow as KEY=VALUE (MetricsField); readers
// look fields up by key, so adding one breaks none.
func Ready(w io.Writer, httpAddr string, p2p []string, extra ...string) {
	fields := append([]string{"listening", "http=" + httpAddr, "p2p=" + strings.Join(p2p, ",")}, extra...)
	fmt.Fprintln(w, strings.Join(fields, " "))
}

// MetricsField is the ready line's field for a metrics listener's address, or nothing without
// one.
func MetricsField(addr string) []string {
	if addr == "" {
		return nil
	}
	return []string{"metrics=" + addr}
}
