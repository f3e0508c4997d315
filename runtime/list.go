package runtime

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
)

// Container is a container in pouch's namespace.
type Container struct {
	// Name is the container's containerd ID.
	Name string
	// Image is the reference it was created from.
	Image string
	// Status is "running", "created", "paused", "exited (CODE)" or "stopped".
	Status string
	// Created is when containerd recorded the container.
	Created time.Time
}

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

// Containers lists the containers in the namespace, sorted by name.
func (r *Runtime) Containers(ctx context.Context) ([]Container, error) {
	cs, err := r.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil {
			if errdefs.IsNotFound(err) { // removed meanwhile
				continue
			}
			return nil, fmt.Errorf("container %s: %w", c.ID(), err)
		}
		status, err := containerStatus(ctx, c, info.Labels)
		if err != nil {
			return nil, err
		}
		out = append(out, Container{Name: c.ID(), Image: info.Image, Status: status, Created: info.CreatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func containerStatus(ctx context.Context, c containerd.Container, labels map[string]string) (string, error) {
	task, err := c.Task(ctx, nil)
	if err == nil {
		st, err := task.Status(ctx)
		if err != nil {
			return "", fmt.Errorf("status of %s: %w", c.ID(), err)
		}
		if st.Status == containerd.Stopped {
			return fmt.Sprintf("exited (%d)", st.ExitStatus), nil
		}
		return string(st.Status), nil
	}
	if !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("task of %s: %w", c.ID(), err)
	}
	if code, ok := labels[LabelExitCode]; ok {
		if _, err := strconv.Atoi(code); err == nil {
			return "exited (" + code + ")", nil
		}
	}
	return "stopped", nil
}

// RemoveContainer removes a stopped container and its snapshot. A running container is refused
// with ErrContainerRunning.
func (r *Runtime) RemoveContainer(ctx context.Context, name string) error {
	c, err := r.client.LoadContainer(ctx, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s", ErrContainerNotFound, name)
		}
		return fmt.Errorf("container %s: %w", name, err)
	}
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("status of %s: %w", name, err)
		}
		if st.Status != containerd.Stopped {
			return fmt.Errorf("%w: %s is %s", ErrContainerRunning, name, st.Status)
		}
		if _, err := task.Delete(ctx); err != nil {
			return fmt.Errorf("delete task of %s: %w", name, err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("task of %s: %w", name, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s", ErrContainerNotFound, name)
		}
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
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
