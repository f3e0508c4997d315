package runtime

import (
	"context"
	"fmt"
	"sort"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
)

// Images lists the images in the namespace, sorted by name.
func (r *Runtime) Images(ctx context.Context) ([]Image, error) {
	imgs, err := r.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		d, err := r.describe(ctx, img)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveImage removes an image (short names are normalized, "busybox" is
// docker.io/library/busybox:latest); containerd's garbage collector then frees its blobs and
// snapshots. An image some container was created from is refused with ErrImageInUse.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	name, err := NormalizeRef(ref)
	if err != nil {
		return err
	}
	if _, err := r.client.ImageService().Get(ctx, name); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s", ErrImageNotFound, name)
		}
		return fmt.Errorf("image %s: %w", name, err)
	}
	users, err := r.client.Containers(ctx, fmt.Sprintf("image==%s", name))
	if err != nil {
		return fmt.Errorf("containers of %s: %w", name, err)
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: %s is used by container %s", ErrImageInUse, name, users[0].ID())
	}
	if err := r.client.ImageService().Delete(ctx, name, images.SynchronousDelete()); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s", ErrImageNotFound, name)
		}
		return fmt.Errorf("remove image %s: %w", name, err)
	}
	return nil
}
