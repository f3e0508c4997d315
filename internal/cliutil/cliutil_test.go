package cliutil

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestPermute(t *testing.T) {
	t.Parallel()
	flags := []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"O"}}, &cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}}, &cli.BoolFlag{Name: "quiet"}}
	cases := []struct{ in, want []string }{
		{[]string{"http://x", "-O", "f"}, []string{"-O", "f", "--", "http://x"}},
		{[]string{"-O", "f", "http://x"}, []string{"-O", "f", "--", "http://x"}},
		{[]string{"--quiet", "http://x", "-H", "A: b", "-O=f"}, []string{"--quiet", "-H", "A: b", "-O=f", "--", "http://x"}},
		{[]string{"-O", "-", "http://x"}, []string{"-O", "-", "--", "http://x"}},
		{[]string{"-O", "f"}, []string{"-O", "f"}},
	}
	for _, c := range cases {
		if got := Permute(flags, c.in); !slices.Equal(got, c.want) {
			t.Errorf("Permute(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The ready line names the API and libp2p addresses, and the metrics listener's only when there
// is one.
func TestReadyLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		metrics, want string
	}{
		{"", "listening http=127.0.0.1:8002 p2p=/ip4/127.0.0.1/tcp/4001,/ip4/10.0.0.1/tcp/4001\n"},
		{"127.0.0.1:9102", "listening http=127.0.0.1:8002 p2p=/ip4/127.0.0.1/tcp/4001,/ip4/10.0.0.1/tcp/4001 metrics=127.0.0.1:9102\n"},
	} {
		var b strings.Builder
		Ready(&b, "127.0.0.1:8002", []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/10.0.0.1/tcp/4001"}, MetricsField(tc.metrics)...)
		if b.String() != tc.want {
			t.Errorf("metrics %q: %q, want %q", tc.metrics, b.String(), tc.want)
		}
	}
}
