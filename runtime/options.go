package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pouch-p2p/pouch/runtime/volume"
)

// Mount is a host directory or a named volume mounted into a container, as `-v` gives it.
type Mount struct {
	// Type is "bind" (Source is a host path) or "volume" (Source is a volume's name).
	Type        string `json:"Type"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	ReadOnly    bool   `json:"ReadOnly,omitempty"`
}

// ParseVolume parses HOST:CTR[:ro|rw] (HOST an absolute path) or NAME:CTR[:ro|rw] (NAME a
// named volume, created when missing).
func ParseVolume(s string) (Mount, error) {
	bad := func(why string) (Mount, error) {
		return Mount{}, fmt.Errorf("%w: -v %q: %s (want /host/path:/container/path[:ro] or VOLUME:/container/path[:ro])", ErrInvalid, s, why)
	}
	parts := strings.Split(s, ":")
	var m Mount
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return bad("mode " + parts[2])
		}
	default:
		return bad("no container path")
	}
	src, dst := parts[0], parts[1]
	if !filepath.IsAbs(dst) || filepath.Clean(dst) == "/" {
		return bad("the container path must be absolute and not /")
	}
	m.Destination = filepath.Clean(dst)
	switch {
	case filepath.IsAbs(src):
		m.Type, m.Source = "bind", filepath.Clean(src)
	case volume.ValidName(src):
		m.Type, m.Source = "volume", src
	default:
		return bad("the host path must be absolute, or a volume name")
	}
	return m, nil
}

// RestartPolicy says when a container that exited is started again.
type RestartPolicy struct {
	// Name is "no", "always" or "on-failure".
	Name string `json:"Name"`
	// MaximumRetryCount bounds on-failure's restarts; 0 is no bound.
	MaximumRetryCount int `json:"MaximumRetryCount"`
}

// String is the policy as --restart takes it.
func (p RestartPolicy) String() string {
	if p.Name == "on-failure" && p.MaximumRetryCount > 0 {
		return "on-failure:" + strconv.Itoa(p.MaximumRetryCount)
	}
	if p.Name == "" {
		return "no"
	}
	return p.Name
}

// ParseRestart parses no, always, unless-stopped (as always: pouch has no daemon to restart
// after) or on-failure[:N].
func ParseRestart(s string) (RestartPolicy, error) {
	name, n, hasN := strings.Cut(s, ":")
	switch name {
	case "", "no":
		if !hasN {
			return RestartPolicy{Name: "no"}, nil
		}
	case "always", "unless-stopped":
		if !hasN {
			return RestartPolicy{Name: "always"}, nil
		}
	case "on-failure":
		if !hasN {
			return RestartPolicy{Name: "on-failure"}, nil
		}
		if v, err := strconv.Atoi(n); err == nil && v >= 0 {
			return RestartPolicy{Name: "on-failure", MaximumRetryCount: v}, nil
		}
	}
	return RestartPolicy{}, fmt.Errorf("%w: --restart %q (want no, always, unless-stopped or on-failure[:N])", ErrInvalid, s)
}

// restarts reports whether a container that exited with code after count restarts is started
// again.
func (p RestartPolicy) restarts(code, count int) bool {
	switch p.Name {
	case "always":
		return true
	case "on-failure":
		return code != 0 && (p.MaximumRetryCount == 0 || count < p.MaximumRetryCount)
	}
	return false
}

var envName = regexp.MustCompile(`^[^=\s]+$`)

// ParseEnv turns -e values into KEY=VALUE pairs: KEY=VALUE stays, a bare KEY takes its value
// from lookup (os.LookupEnv) and is dropped when unset there, as docker does.
func ParseEnv(values []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	for _, v := range values {
		k, _, hasValue := strings.Cut(v, "=")
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("%w: environment variable %q: want KEY=VALUE or KEY", ErrInvalid, v)
		}
		if hasValue {
			out = append(out, v)
			continue
		}
		if val, ok := lookup(k); ok {
			out = append(out, k+"="+val)
		}
	}
	return out, nil
}

// ReadEnvFile reads an --env-file: one KEY=VALUE or KEY per line, blank lines and lines
// starting with # ignored; values are taken as written (no quotes removed), as docker does.
func ReadEnvFile(path string, lookup func(string) (string, bool)) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --env-file: %w", ErrInvalid, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, _, _ := strings.Cut(line, "="); !envName.MatchString(k) {
			return nil, fmt.Errorf("%w: --env-file %s line %d: %q is not KEY=VALUE", ErrInvalid, path, n, line)
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: --env-file %s: %w", ErrInvalid, path, err)
	}
	return ParseEnv(lines, lookup)
}

// validName is docker's rule for container names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
