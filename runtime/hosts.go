package runtime

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultRegistry is the hosts directory entry containerd uses for every registry that has no
// directory of its own.
const DefaultRegistry = "_default"

// registryHost is a registry host as containerd names its hosts directories: a DNS name or IPv4
// address, or a bracketed IPv6 address, with an optional port.
var registryHost = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// WriteHostsTOML writes <hostsDir>/<registry>/hosts.toml, which makes containerd (and every
// client using a hosts-dir resolver) pull and resolve registry's images through mirrorURL first.
//
// registry is DefaultRegistry ("_default", for every registry without its own entry), a host
// such as "docker.io" or "registry.local:5000" (the upstream, used when the mirror fails, is
// https://<host>, or https://registry-1.docker.io for docker.io), or a URL such as
// "http://registry.local:5000" for an upstream that speaks plain HTTP. mirrorURL is the
// mirror's base URL, e.g. "http://127.0.0.1:65001" for a dfdaemon. The file is replaced
// atomically; the path written is returned.
func WriteHostsTOML(hostsDir, registry, mirrorURL string) (string, error) {
	dir, server, err := registryEntry(registry)
	if err != nil {
		return "", err
	}
	mirror, err := parseMirror(mirrorURL)
	if err != nil {
		return "", err
	}
	content, err := hostsTOML(dir, server, mirror)
	if err != nil {
		return "", fmt.Errorf("hosts.toml: %w", err)
	}
	target := filepath.Join(hostsDir, dir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", fmt.Errorf("hosts dir: %w", err)
	}
	path := filepath.Join(target, "hosts.toml")
	tmp, err := os.CreateTemp(target, ".hosts.toml-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// registryEntry returns the directory name and upstream server URL ("" for _default).
func registryEntry(registry string) (dir, server string, err error) {
	if registry == DefaultRegistry {
		return DefaultRegistry, "", nil
	}
	host, scheme := registry, "https"
	if i := strings.Index(registry, "://"); i >= 0 {
		u, err := url.Parse(registry)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || strings.Trim(u.Path, "/") != "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", "", fmt.Errorf("registry %q: want a host[:port] or an http(s)://host[:port] URL", registry)
		}
		host, scheme = u.Host, u.Scheme
	}
	if !registryHost.MatchString(host) || !validPort(host) {
		return "", "", fmt.Errorf("registry %q: want %s, a host[:port] or an http(s)://host[:port] URL", registry, DefaultRegistry)
	}
	if host == "docker.io" {
		return host, scheme + "://registry-1.docker.io", nil
	}
	return host, scheme + "://" + host, nil
}

func validPort(host string) bool {
	i := strings.LastIndex(host, ":")
	if i < 0 || strings.HasSuffix(host, "]") {
		return true
	}
	p, err := strconv.Atoi(host[i+1:])
	return err == nil && p > 0 && p < 65536
}

// parseMirror checks the mirror URL and returns it without a trailing slash.
func parseMirror(mirrorURL string) (string, error) {
	u, err := url.Parse(mirrorURL)
	if err != nil {
		return "", fmt.Errorf("mirror %q: %w", mirrorURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("mirror %q: want an http:// or https:// URL with a host, such as http://127.0.0.1:65001", mirrorURL)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// hostsFile is the part of containerd's hosts.toml that pouch writes (containerd's
// docs/hosts.md): the mirror, tried first, and the upstream server, tried when it fails.
type hostsFile struct {
	Server string                `toml:"server,omitempty"` // "" for _default: the registry itself
	Host   map[string]mirrorHost `toml:"host"`
}

type mirrorHost struct {
	// Pull and resolve only: pushes never go through the mirror.
	Capabilities []string `toml:"capabilities"`
}

func hostsTOML(dir, server, mirror string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by pouch: pulls from %s go through the mirror first.\n\n", describeEntry(dir))
	err := toml.NewEncoder(&b).Encode(hostsFile{
		Server: server,
		Host:   map[string]mirrorHost{mirror: {Capabilities: []string{"pull", "resolve"}}},
	})
	return b.Bytes(), err
}

func describeEntry(dir string) string {
	if dir == DefaultRegistry {
		return "every registry without its own entry"
	}
	return dir
}
