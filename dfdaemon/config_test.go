package dfdaemon

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/tlsca"
)

func TestConfigValidatesSupernodesAndCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := tlsca.Make(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
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
