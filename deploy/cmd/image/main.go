// Command image builds Pouch's OCI image (package deploy/image) and writes it as an OCI layout
// directory and, given --push, pushes it to a registry, tagged with the version. `make image`
// and `make image-push` run it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pouch-p2p/pouch/deploy/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		stop()
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:        "image",
		Usage:       "build Pouch's OCI image (static binaries on an empty base) and push it",
		UsageText:   "image --version V --revision SHA [--platform linux/amd64]... [--out DIR] [--push HOST[:PORT]/REPO [--insecure]]",
		HideVersion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "module-dir", Value: "..", Usage: "the Pouch module whose ./cmd/... are built"},
			&cli.StringSliceFlag{Name: "platform", Value: cli.NewStringSlice("linux/amd64"), Usage: "OS/ARCH[/VARIANT] to build for (repeatable: several make a multi-platform index)"},
			&cli.StringFlag{Name: "version", Value: "dev", Usage: "release set into the binaries, the labels and the tag (make: git describe --tags --always --dirty)"},
			&cli.StringFlag{Name: "revision", Usage: "VCS commit set into the binaries and label org.opencontainers.image.revision"},
			&cli.StringFlag{Name: "source", Value: "https://github.com/pouch-p2p/pouch", Usage: "label org.opencontainers.image.source"},
			&cli.TimestampFlag{Name: "created", Layout: time.RFC3339, Usage: "the image's creation time, RFC 3339 (make: the commit's time, so a rebuild of one commit gives one digest; default now)"},
			&cli.StringFlag{Name: "ca-file", Value: "/etc/ssl/certs/ca-certificates.crt", Usage: "CA bundle copied into the image, so the supernode reaches TLS registries"},
			&cli.StringFlag{Name: "work-dir", Usage: "where binaries are built (default: a temporary directory)"},
			&cli.StringFlag{Name: "out", Value: "../out/image/oci", Usage: "OCI layout directory to write (replaced); empty: none"},
			&cli.StringFlag{Name: "push", Usage: "push as HOST[:PORT]/REPO:<tag from --version>"},
			&cli.BoolFlag{Name: "insecure", Usage: "the --push registry speaks plain HTTP"},
		},
		Action: run,
	}
}

func run(c *cli.Context) error {
	o := image.Options{
		ModuleDir: c.String("module-dir"), Platforms: c.StringSlice("platform"),
		Version: c.String("version"), Revision: c.String("revision"), Source: c.String("source"),
		Created: time.Now(), CAFile: c.String("ca-file"), WorkDir: c.String("work-dir"),
	}
	if t := c.Timestamp("created"); t != nil {
		o.Created = *t
	}
	idx, images, err := image.Build(c.Context, o)
	if err != nil {
		return err
	}
	out := image.Taggable(idx, images)
	d, err := out.Digest()
	if err != nil {
		return err
	}
	if dir := c.String("out"); dir != "" {
		if err := image.WriteLayout(dir, out, image.Tag(o.Version)); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "wrote %s: %s:%s %s\n", dir, image.Name, image.Tag(o.Version), d)
	}
	if repo := c.String("push"); repo != "" {
		ref, err := image.Push(c.Context, repo, image.Tag(o.Version), c.Bool("insecure"), out)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "pushed %s@%s\n", ref, d)
	}
	return nil
}
