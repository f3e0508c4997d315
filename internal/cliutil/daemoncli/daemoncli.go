// Package daemoncli holds the flag checks of the two daemons (supernode, dfdaemon) that dfget does
// not share. It is apart from cliutil because checking a libp2p address links go-multiaddr and
// its hash registry (blake3, CPU feature detection at init...): dfget, started for every
// download, imports cliutil and must not pay for them.
package daemoncli

import (
	"fmt"

	"github.com/multiformats/go-multiaddr"

	"github.com/pouch-p2p/pouch/internal/cliutil"
)

// Multiaddr checks a libp2p address such as /ip4/0.0.0.0/tcp/65002.
func Multiaddr(s string) error {
	if _, err := multiaddr.NewMultiaddr(s); err != nil {
		return fmt.Errorf("%q is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/65002): %w", s, err)
	}
	return nil
}

// Checks are the checks of the flags both daemons have.
func Checks() map[string]cliutil.Check {
	m := cliutil.LogChecks()
	for k, v := range map[string]cliutil.Check{
		"listen": cliutil.HostPort, "metrics-listen": cliutil.HostPort, "p2p-listen": Multiaddr, "advertise-addrs": Multiaddr,
		"upload-rate": cliutil.RateValue, "gc-high": cliutil.Size, "gc-low": cliutil.Size,
		"allow-networks": cliutil.Prefixes, "deny-networks": cliutil.Prefixes,
	} {
		m[k] = v
	}
	return m
}
