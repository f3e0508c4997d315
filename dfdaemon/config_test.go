package dfdaemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pouch-p2p/pouch/internal/fixture/tlsca"
)

func TestConfigValidatesSupernodesAndCA(t *testing.T) {
	t.Parallel()
	files := tlsca.Temp(t, "127.0.0.1")
	dir := filepath.Dir(files.CA)
	for _, c := range []struct {
		name, supernode, ca string
		ok                  bool
	}{
		{"none", "", "", true},
		{"http and https", "http://127.0.0.1:8002, https://sn.example:8002", files.CA, true},
		{"no scheme", "10.0.0.1:8002", "", false},
		{"another scheme", "ftp://10.0.0.1", "", false},
		{"CA file missing", "https://sn:8002", filepath.Join(dir, "nope.pem"), false},
		{"CA file not PEM", "https://sn:8002", files.NotPEM, false},
	} {
		err := Config{DataDir: dir, Supernode: c.supernode, SupernodeCA: c.ca}.WithDefaults().Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func TestClearTextNamesRemotePlainSupernodes(t *testing.T) {
	t.Parallel()
	got := clearText("http://127.0.0.1:8002,http://localhost:8002,http://[::1]:8002,https://10.0.0.1:8002,http://10.0.0.2:8002,http://sn.example")
	if want := []string{"http://10.0.0.2:8002", "http://sn.example"}; !slices.Equal(got, want) {
		t.Fatalf("clearText = %v, want %v", got, want)
	}
}

// A daemon whose supernodes include a plain-HTTP one on another host says so once at start.
func TestStartWarnsOfClearTextSupernodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		supernode string
		warnings  int
	}{
		{"http://127.0.0.1:8002", 0},
		{"https://192.0.2.1:8002", 0},
		{"http://192.0.2.1:8002,http://192.0.2.2:8002", 1},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		// Advertised on a routable address, as a daemon with a supernode on another host must be.
		d, err := New(Config{Supernode: c.supernode, DataDir: t.TempDir(), Listen: "none", AdvertiseAddrs: []string{"/ip4/192.0.2.9/tcp/65002"}}, zap.New(core))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.Run(ctx)
		if n := logs.FilterMessageSnippet("clear text").Len(); n != c.warnings {
			t.Errorf("supernode %s: %d warnings about clear text, want %d", c.supernode, n, c.warnings)
		}
	}
}

// A daemon that could announce only loopback or link-local addresses to a supernode on another
// host refuses to start, naming the flags that fix it; on one host, or advertising a routable
// address, it starts.
func TestStartRefusesLoopbackAddressesForARemoteSupernode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		supernode, listen string
		advertise         []string
		ok                bool
	}{
		{"http://192.0.2.1:8002", "/ip4/127.0.0.1/tcp/0", nil, false},
		{"http://127.0.0.1:8002,https://sn.example:8002", "/ip4/127.0.0.1/tcp/0", nil, false},
		{"http://192.0.2.1:8002", "/ip4/127.0.0.1/tcp/0", []string{"/ip4/192.0.2.9/tcp/65002"}, true},
		{"http://127.0.0.1:8002,http://localhost:8002", "/ip4/127.0.0.1/tcp/0", nil, true},
		{"", "/ip4/127.0.0.1/tcp/0", nil, true},
	} {
		d, err := New(Config{Supernode: c.supernode, DataDir: t.TempDir(), Listen: "none", P2PListen: c.listen, AdvertiseAddrs: c.advertise}, nil)
		if c.ok {
			if err != nil {
				t.Errorf("supernode %s, advertising %v: %v", c.supernode, c.advertise, err)
			} else {
				d.Close()
			}
			continue
		}
		if err == nil {
			d.Close()
			t.Errorf("supernode %s, loopback only: started, want a refusal", c.supernode)
		} else if msg := err.Error(); !strings.Contains(msg, "--p2p-listen") || !strings.Contains(msg, "--advertise-addrs") || !strings.Contains(msg, "127.0.0.1") {
			t.Errorf("supernode %s: %q, want the addresses and the flags named", c.supernode, msg)
		}
	}
}
