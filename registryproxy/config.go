package registryproxy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is the mirror's configuration; the daemon's config nests it.
type Config struct {
	// Default is the upstream registry (host[:port], as in containerd's ?ns=) for clients that
	// send no ns parameter. Empty: such requests get NAME_UNKNOWN.
	Default string
	// Allowed lists the upstream registries the mirror serves. Empty allows any.
	Allowed []string
	// Registries holds per-registry settings, keyed by host[:port] as in ns.
	Registries map[string]RegistryConfig
	// TagTTL is how long a manifest fetched by tag is reused; negative disables it.
	TagTTL time.Duration
	// ManifestCacheBytes bounds the memory of manifests cached by digest.
	ManifestCacheBytes int64
	// FirstByteTimeout is how long a blob may take to start arriving over P2P before the
	// mirror streams it from the upstream itself.
	FirstByteTimeout time.Duration
}

// RegistryConfig is how the mirror talks to one upstream registry.
type RegistryConfig struct {
	Insecure bool   // plain HTTP instead of HTTPS
	CAFile   string // PEM bundle trusted for this registry's TLS certificate
	// Username and Password are used when a client sends no credentials of its own (basic
	// auth, or to buy a bearer token from the registry's token server).
	Username string
	Password string
}

// Defaults.
const (
	DefaultTagTTL             = 5 * time.Second
	DefaultManifestCacheBytes = 16 << 20
	DefaultFirstByteTimeout   = 10 * time.Second
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.TagTTL == 0 {
		c.TagTTL = DefaultTagTTL
	}
	if c.ManifestCacheBytes == 0 {
		c.ManifestCacheBytes = DefaultManifestCacheBytes
	}
	if c.FirstByteTimeout == 0 {
		c.FirstByteTimeout = DefaultFirstByteTimeout
	}
	return c
}

// Validate checks every registry name and that CA files are readable.
func (c Config) Validate() error {
	var errs []error
	if c.Default != "" {
		if err := validHost(c.Default); err != nil {
			errs = append(errs, fmt.Errorf("default: %w", err))
		}
	}
	for _, a := range c.Allowed {
		if err := validHost(a); err != nil {
			errs = append(errs, fmt.Errorf("allowed: %w", err))
		}
	}
	for h, r := range c.Registries {
		if err := validHost(h); err != nil {
			errs = append(errs, fmt.Errorf("registries: %w", err))
		}
		if r.CAFile != "" {
			if _, err := os.Stat(r.CAFile); err != nil {
				errs = append(errs, fmt.Errorf("registries.%s.caFile: %w", h, err))
			}
		}
	}
	if c.ManifestCacheBytes < 0 || c.FirstByteTimeout < 0 {
		errs = append(errs, errors.New("manifestCacheBytes and firstByteTimeout may not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("registryproxy: %w", errors.Join(errs...))
	}
	return nil
}

// validHost accepts host[:port] with a DNS name, an IPv4 address or a bracketed IPv6 address.
func validHost(s string) error {
	bad := fmt.Errorf("%q is not a registry host[:port]", s)
	if s == "" || len(s) > 255 {
		return bad
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad
		}
		host, port = s[1:end], s[end+1:]
		if strings.Trim(host, "0123456789abcdefABCDEF:.") != "" || !strings.Contains(host, ":") {
			return bad
		}
		if port != "" && !strings.HasPrefix(port, ":") {
			return bad
		}
		port = strings.TrimPrefix(port, ":")
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, port = h, p
		if port == "" {
			return bad
		}
	}
	if port != "" {
		if len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return bad
		}
		n := 0
		fmt.Sscan(port, &n)
		if n == 0 || n > 65535 {
			return bad
		}
	}
	if strings.HasPrefix(s, "[") {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return bad
			}
		}
	}
	return nil
}
