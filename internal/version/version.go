// Package version holds what `--version` prints on every binary: the release, the commit and the
// Go version it was built with. The release and commit are set at build time by the Makefile
// (-ldflags -X); a plain `go build` or `go install` falls back to what the Go toolchain stamped
// into the binary (module version, VCS revision), so a binary always says where it came from.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/pouch-p2p/pouch/internal/version.version=v1.2.3
// -X github.com/pouch-p2p/pouch/internal/version.commit=SHA". Variables, not constants: the
// linker can only set string variables.
var (
	version string
	commit  string
)

// Info is a binary's build identity.
type Info struct {
	Version string // release, e.g. v0.3.0 or v0.3.0-4-gabc1234-dirty; "dev" when unknown
	Commit  string // VCS revision; "unknown" when the build recorded none
	Go      string // the Go toolchain, e.g. go1.26.8
}

// Get returns the build identity of the running binary.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(version, commit, bi)
}

// get fills what the linker did not set from the build info.
func get(ver, rev string, bi *debug.BuildInfo) Info {
	info := Info{Version: ver, Commit: rev, Go: runtime.Version()}
	if bi != nil {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version // go install module@version
		}
		if info.Commit == "" {
			info.Commit = vcsRevision(bi)
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// vcsRevision is the revision `go build` stamps in a checkout, marked when the tree was dirty.
func vcsRevision(bi *debug.BuildInfo) string {
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// String is the one line `--version` prints after the program's name:
// "v0.3.0 (commit 1a2b3c4…, go1.26.8)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, i.Commit, i.Go)
}
