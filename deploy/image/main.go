// Command image builds Pouch's OCI image without Docker: the static binaries of every command,
// the build host's CA certificates and a non-root user, as layers on an empty base
// (go-containerregistry), for one or more Linux platforms. It writes an OCI layout directory
// and, given --push, pushes the image to a registry, tagged with the version. `make image` and
// `make image-push` run it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/urfave/cli/v2"
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
	o := Options{
		ModuleDir: c.String("module-dir"), Platforms: c.StringSlice("platform"),
		Version: c.String("version"), Revision: c.String("revision"), Source: c.String("source"),
		Created: time.Now(), CAFile: c.String("ca-file"), WorkDir: c.String("work-dir"),
	}
	if t := c.Timestamp("created"); t != nil {
		o.Created = *t
	}
	idx, images, err := Build(c.Context, o)
	if err != nil {
		return err
	}
	out := Taggable(idx, images)
	d, err := out.Digest()
	if err != nil {
		return err
	}
	if dir := c.String("out"); dir != "" {
		if err := WriteLayout(dir, out, Tag(o.Version)); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "wrote %s: pouch:%s %s\n", dir, Tag(o.Version), d)
	}
	if repo := c.String("push"); repo != "" {
		ref, err := Push(c.Context, repo, Tag(o.Version), c.Bool("insecure"), out)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "pushed %s@%s\n", ref, d)
	}
	return nil
}

// Taggable is what gets a tag: the image itself for one platform (simplest for every client),
// the index for several.
func Taggable(idx v1.ImageIndex, images []v1.Image) interface {
	remote.Taggable
	Digest() (v1.Hash, error)
} {
	if len(images) == 1 {
		return images[0]
	}
	return idx
}

// WriteLayout writes an OCI image layout at dir, its one entry named tag.
func WriteLayout(dir string, t remote.Taggable, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	ann := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})
	switch v := t.(type) {
	case v1.Image:
		err = p.AppendImage(v, ann)
	case v1.ImageIndex:
		err = p.AppendIndex(v, ann)
	default:
		err = errors.New("neither an image nor an index")
	}
	if err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	return nil
}

// Push pushes t as repo:tag; insecure allows a plain-HTTP registry.
func Push(ctx context.Context, repo, tag string, insecure bool, t remote.Taggable) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(repo+":"+tag, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: --push %q: %v", ErrBadOptions, repo, err)
	}
	if err := remote.Push(ref, t, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return nil, fmt.Errorf("image: push %s: %w", ref, err)
	}
	return ref, nil
}
