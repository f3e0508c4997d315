package cliutil

import (
	"slices"
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
