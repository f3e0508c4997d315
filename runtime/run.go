package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
)

// Labels pouch sets on the containers it creates.
const (
	// LabelExitCode holds the exit code of the container's last run.
	LabelExitCode = "io.pouch.exit-code"
	// LabelCreatedBy marks containers created by pouch.
	LabelCreatedBy = "io.pouch.created-by"
)

// RunOptions describe one container run.
type RunOptions struct {
	// Image is the image reference; it is pulled (through the mirror) when containerd lacks it.
	Image string
	// Args replaces the image's entrypoint and command when not empty.
	Args []string
	// Name is the container's name (its containerd ID); empty means a random one.
	Name string
	// Rm removes the container and its snapshot when it exits.
	Rm bool
	// Stdout and Stderr receive the container's output; nil discards it.
	Stdout, Stderr io.Writer
	// Progress receives the pull progress when the image has to be pulled; nil discards it.
	Progress io.Writer
}

// Run creates a container from opts.Image with a fresh snapshot and an OCI spec built from the
// image config, attaches its stdout and stderr, starts it and waits for it. exitCode is the
// task's exit status; err is set only when pouch could not run the container, never because the
// container exited non-zero. When ctx is cancelled the task gets SIGTERM, then SIGKILL after 10s.
// Without Rm the stopped container stays, labelled with its exit code.
func (r *Runtime) Run(ctx context.Context, opts RunOptions) (exitCode int, err error) {
	img, err := r.ensureImage(ctx, opts.Image, opts.Progress)
	if err != nil {
		return -1, err
	}
	id := opts.Name
	if id == "" {
		if id, err = randomID(); err != nil {
			return -1, err
		}
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img)}
	if len(opts.Args) > 0 {
		specOpts = append(specOpts, oci.WithProcessArgs(opts.Args...))
	}
	newOpts := []containerd.NewContainerOpts{containerd.WithImage(img)}
	if r.cfg.Snapshotter != "" {
		newOpts = append(newOpts, containerd.WithSnapshotter(r.cfg.Snapshotter))
	}
	newOpts = append(newOpts,
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(map[string]string{LabelCreatedBy: "pouch"}),
	)
	container, err := r.client.NewContainer(ctx, id, newOpts...)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return -1, fmt.Errorf("%w: %s", ErrContainerExists, id)
		}
		return -1, fmt.Errorf("create container %s: %w", id, err)
	}
	// Cleanup must run even when ctx is cancelled.
	cleanupCtx := context.WithoutCancel(ctx)
	defer func() {
		if !opts.Rm {
			return
		}
		if derr := container.Delete(cleanupCtx, containerd.WithSnapshotCleanup); derr != nil && err == nil {
			err = fmt.Errorf("remove container %s: %w", id, derr)
		}
	}()

	stdout, stderr := orDiscard(opts.Stdout), orDiscard(opts.Stderr)
	task, err := container.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, stdout, stderr)))
	if err != nil {
		return -1, fmt.Errorf("create task for %s: %w", id, err)
	}
	defer func() {
		if _, derr := task.Delete(cleanupCtx, containerd.WithProcessKill); derr != nil && err == nil {
			err = fmt.Errorf("delete task of %s: %w", id, derr)
		}
	}()
	statusC, err := task.Wait(cleanupCtx)
	if err != nil {
		return -1, fmt.Errorf("wait for %s: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		return -1, fmt.Errorf("start %s: %w", id, err)
	}
	var status containerd.ExitStatus
	select {
	case status = <-statusC:
	case <-ctx.Done():
		status = stop(cleanupCtx, task, statusC)
	}
	code, _, err := status.Result()
	if err != nil {
		return -1, fmt.Errorf("exit status of %s: %w", id, err)
	}
	if !opts.Rm {
		if _, err := container.SetLabels(cleanupCtx, map[string]string{LabelExitCode: strconv.Itoa(int(code))}); err != nil {
			return int(code), fmt.Errorf("label %s: %w", id, err)
		}
	}
	return int(code), nil
}

// stop sends SIGTERM, then SIGKILL after a grace period, and returns the exit status.
func stop(ctx context.Context, task containerd.Task, statusC <-chan containerd.ExitStatus) containerd.ExitStatus {
	_ = task.Kill(ctx, syscall.SIGTERM)
	select {
	case st := <-statusC:
		return st
	case <-time.After(10 * time.Second):
	}
	_ = task.Kill(ctx, syscall.SIGKILL)
	return <-statusC
}

// ensureImage returns the image, pulling it when containerd lacks it and unpacking it when its
// snapshot is missing.
func (r *Runtime) ensureImage(ctx context.Context, ref string, progress io.Writer) (containerd.Image, error) {
	name, err := NormalizeRef(ref)
	if err != nil {
		return nil, err
	}
	img, err := r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		if _, err := r.Pull(ctx, name, progress); err != nil {
			return nil, err
		}
		img, err = r.client.GetImage(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	unpacked, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
	}
	return img, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// randomID returns 12 hex digits, like a short Docker container ID.
func randomID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errors.New("random container name: " + err.Error())
	}
	return hex.EncodeToString(b[:]), nil
}
