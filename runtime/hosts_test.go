package runtime_test

import (
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"

	"github.com/pouch-p2p/pouch/runtime"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestWriteHostsTOMLGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden, registry, mirror, wantDir string
	}{
		{"default", "_default", "http://127.0.0.1:65001", "_default"},
		{"dockerhub", "docker.io", "http://127.0.0.1:65001/", "docker.io"},
		{"named", "registry.example.com:5000", "https://mirror.example.com", "registry.example.com:5000"},
		{"plain-http-upstream", "http://10.0.0.5:5000", "http://127.0.0.1:65001", "10.0.0.5:5000"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, err := runtime.WriteHostsTOML(dir, tt.registry, tt.mirror)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tt.wantDir, "hosts.toml"); path != want {
				t.Errorf("path = %s, want %s", path, want)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "hosts", tt.golden+".toml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s (go test -update rewrites it)\n got:\n%s\nwant:\n%s", path, golden, got, want)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("%s holds %d files, want only hosts.toml", filepath.Dir(path), len(entries))
			}
		})
	}
}

func TestWriteHostsTOMLRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, registry, mirror string }{
		{"dotdot registry", "..", "http://127.0.0.1:65001"},
		{"path in registry", "a/b", "http://127.0.0.1:65001"},
		{"path in registry url", "http://a/b", "http://127.0.0.1:65001"},
		{"bad port", "a:99999", "http://127.0.0.1:65001"},
		{"empty registry", "", "http://127.0.0.1:65001"},
		{"mirror without scheme", "docker.io", "127.0.0.1:65001"},
		{"mirror ftp", "docker.io", "ftp://127.0.0.1"},
		{"mirror with query", "docker.io", "http://127.0.0.1:65001/?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if path, err := runtime.WriteHostsTOML(dir, tt.registry, tt.mirror); err == nil {
				t.Fatalf("WriteHostsTOML(%q, %q) wrote %s, want an error", tt.registry, tt.mirror, path)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a rejected call left %d entries in the hosts dir", len(entries))
			}
		})
	}
}

// TestHostsTOMLResolves reads what WriteHostsTOML wrote with containerd's own hosts-dir
// resolver, every entry in one directory as on a node: for each registry the mirror comes first
// with pull and resolve only, then the upstream with every capability, over the scheme written
// (plain HTTP stays plain, no HTTPS-first fallback) and with TLS verification on.
func TestHostsTOMLResolves(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for registry, mirror := range map[string]string{
		"_default":                  "http://127.0.0.1:65001",
		"docker.io":                 "http://127.0.0.1:65002/",
		"registry.example.com:5000": "https://mirror.example.com",
		"http://10.0.0.5:5000":      "http://127.0.0.1:65003",
	} {
		if _, err := runtime.WriteHostsTOML(dir, registry, mirror); err != nil {
			t.Fatal(err)
		}
	}
	hosts := config.ConfigureHosts(context.Background(), config.HostOptions{HostDir: config.HostDirFromRoot(dir)})
	tests := []struct {
		registry string
		want     []string // scheme://host/path of each host, in order
	}{
		{"docker.io", []string{"http://127.0.0.1:65002/v2", "https://registry-1.docker.io/v2"}},
		{"quay.io", []string{"http://127.0.0.1:65001/v2", "https://quay.io/v2"}},
		{"registry.example.com:5000", []string{"https://mirror.example.com/v2", "https://registry.example.com:5000/v2"}},
		{"10.0.0.5:5000", []string{"http://127.0.0.1:65003/v2", "http://10.0.0.5:5000/v2"}},
	}
	const all = docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush
	for _, tt := range tests {
		got, err := hosts(tt.registry)
		if err != nil {
			t.Fatal(err)
		}
		var urls []string
		for i, h := range got {
			urls = append(urls, h.Scheme+"://"+h.Host+h.Path)
			want := all
			if i == 0 {
				want = docker.HostCapabilityPull | docker.HostCapabilityResolve
			}
			if h.Capabilities != want {
				t.Errorf("%s: host %s capabilities = %b, want %b", tt.registry, h.Host, h.Capabilities, want)
			}
			tr, ok := h.Client.Transport.(*http.Transport)
			if !ok {
				t.Errorf("%s: host %s goes through %T, want a plain transport (no HTTP fallback)", tt.registry, h.Host, h.Client.Transport)
			} else if tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
				t.Errorf("%s: host %s skips TLS verification", tt.registry, h.Host)
			}
		}
		if strings.Join(urls, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s resolves through %v, want %v", tt.registry, urls, tt.want)
		}
	}
}
