package dfapi

import "net/netip"

// The one-shot peer: dfget without a local dfdaemon starts the dfdaemon binary as
// "dfdaemon OneShotArg" for one download, so that dfget itself links none of the daemon
// (starting dfget is most of a small file's cost). The two speak this protocol:
//
//   - dfget writes a OneShot as JSON to the child's stdin and closes it: the secret travels
//     there, never on the child's command line, which every user of the machine can read.
//   - The child's file descriptor OneShotFD is one end of a Unix socket pair. The child serves
//     its local API (PathDownload, as a daemon's listener does) on that one connection; dfget
//     sends its download request there (the origin's credentials in its headers) and reads the
//     answer exactly as from a daemon, error trailer included.
//   - The child first writes OneShotHello on the socket, before anything else: dfget refuses
//     a binary that does not (another program, or a dfdaemon of another protocol).
//   - When the child cannot start its peer, it writes the reason as one line to its stdout and
//     exits 1; dfget reports that line. Its logs go to stderr, which it shares with dfget.
//   - The child stops (and removes the temporary store it made) when dfget closes the socket:
//     after the download, on failure, or when dfget dies.
const (
	OneShotArg   = "oneshot-peer"
	OneShotFD    = 3
	OneShotHello = "pouch-oneshot 1\n" // the protocol's version; a change to it needs a new number
)

// OneShot configures the one-shot peer: the flags of dfget that concern it.
type OneShot struct {
	Supernode   string         `json:"supernode"`             // comma-separated URLs
	SupernodeCA string         `json:"supernodeCA,omitempty"` // PEM file of the CAs trusted for https:// supernodes
	Secret      string         `json:"secret,omitempty"`      // the cluster secret
	DataDir     string         `json:"dataDir,omitempty"`     // the store; empty: a temporary directory, removed at the end
	Allow       []netip.Prefix `json:"allow,omitempty"`       // the SSRF policy's exceptions (--allow-networks)
	Deny        []netip.Prefix `json:"deny,omitempty"`        // and additions (--deny-networks)
	LogLevel    string         `json:"logLevel,omitempty"`    // dfget's --log-level and --log-format
	LogFormat   string         `json:"logFormat,omitempty"`
}
