package cliutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// testApp is a daemon with one flag of each kind; run reports what the action saw.
func testApp(got *map[string]any) *cli.App {
	a := &cli.App{
		Name: "testd",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:1"},
			&cli.StringFlag{Name: "gc-high"},
			&cli.DurationFlag{Name: "gc-ttl"},
			&cli.BoolFlag{Name: "dht", Value: true},
			&cli.StringSliceFlag{Name: "registry-insecure"},
		},
		Action: func(c *cli.Context) error {
			*got = map[string]any{"listen": c.String("listen"), "gc-high": c.String("gc-high"), "gc-ttl": c.Duration("gc-ttl"),
				"dht": c.Bool("dht"), "registry-insecure": c.StringSlice("registry-insecure")}
			return nil
		},
	}
	Daemon(a, map[string]Check{"gc-high": Size, "listen": HostPort})
	Conventions(a)
	return a
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "testd.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The file sets what neither a flag nor the environment sets; each key is a flag's name.
func TestConfigPrecedence(t *testing.T) {
	p := writeConfig(t, "listen: 127.0.0.1:2\ngc-high: 5GiB\ngc-ttl: 1h\ndht: false\nregistry-insecure: [a:5000, b]\n")
	var got map[string]any
	t.Setenv("POUCH_GC_HIGH", "6GiB")
	if err := testApp(&got).Run([]string{"testd", "--config", p, "--gc-ttl", "2h"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"listen": "127.0.0.1:2", "gc-high": "6GiB", "gc-ttl": 2 * time.Hour, "dht": false, "registry-insecure": []string{"a:5000", "b"}}
	for k, v := range want {
		if g := got[k]; !equal(g, v) {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	if err := testApp(&got).Run([]string{"testd", "--config", p, "--gc-high", "7GiB"}); err != nil || got["gc-high"] != "7GiB" {
		t.Errorf("a flag over the environment: gc-high = %v (%v), want 7GiB", got["gc-high"], err)
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, _ := b.([]string)
		return slices.Equal(as, bs)
	}
	return a == b
}

// A bad file names the file, the line and the key.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"listen: 127.0.0.1:2\nnope: 1\n", `:2: unknown key "nope"`},
		{"gc-ttl: 5x\n", `:1: gc-ttl: "5x" is not a duration`},
		{"\n\ngc-high: lots\n", `:3: gc-high: "lots" is not a size`},
		{"dht: maybe\n", `:1: dht: "maybe" is not true or false`},
		{"listen: [a, b]\n", `:1: listen: takes one value, not a list`},
		{"listen: {a: b}\n", `:1: listen: want a value, not a mapping`},
		{"listen: x\n", `:1: listen: "x" is not HOST:PORT`},
		{"gc-ttl: 1h\ngc-ttl: 2h\n", `:2: gc-ttl: given twice (first at line 1)`},
		{"config: other.yaml\n", `:1: config: a config file cannot name another`},
		{"- a\n- b\n", `:1: want a mapping of testd's flag names`},
		{"listen: [\n", `yaml:`},
	} {
		p := writeConfig(t, tc.text)
		var got map[string]any
		err := testApp(&got).Run([]string{"testd", "--config", p})
		if err == nil || !strings.Contains(err.Error(), p+tc.want) && !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want one with %s%s", tc.text, err, p, tc.want)
		}
	}
}

// A bad value from a flag or the environment names the flag or the variable, in one line.
func TestCheckSources(t *testing.T) {
	var got map[string]any
	err := testApp(&got).Run([]string{"testd", "--gc-high", "lots"})
	if err == nil || !strings.HasPrefix(err.Error(), `--gc-high: "lots" is not a size`) {
		t.Errorf("flag: %v", err)
	}
	t.Setenv("POUCH_GC_HIGH", "heaps")
	if err := testApp(&got).Run([]string{"testd"}); err == nil || !strings.HasPrefix(err.Error(), `$POUCH_GC_HIGH: "heaps" is not a size`) {
		t.Errorf("environment: %v", err)
	}
	t.Setenv("POUCH_GC_TTL", "soon")
	if err := testApp(&got).Run([]string{"testd"}); err == nil || err.Error() != `$POUCH_GC_TTL: "soon" is not a duration (e.g. 30s, 5m, 1h30m)` {
		t.Errorf("environment, typed: %v", err)
	}
}

func TestEnvVar(t *testing.T) {
	t.Parallel()
	if got := EnvVar("p2p-listen"); got != "POUCH_P2P_LISTEN" {
		t.Errorf("EnvVar = %s", got)
	}
}

func TestURLs(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"": true, "http://a:8002": true, "https://a:1, http://b:2": true, "notaurl": false, "ftp://a": false, "http://": false, "http://a,b": false} {
		if err := URLs(in); (err == nil) != ok {
			t.Errorf("URLs(%q) = %v", in, err)
		}
	}
}
