package image

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

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
		return nil, fmt.Errorf("%w: --push %q: %w", ErrBadOptions, repo, err)
	}
	if err := remote.Push(ref, t, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return nil, fmt.Errorf("image: push %s: %w", ref, err)
	}
	return ref, nil
}
