package runtime

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
)

// ExecOptions describe a command run in a running container.
type ExecOptions struct {
	// Args is the command and its arguments.
	Args []string
	// Env adds KEY=VALUE pairs to the container's environment.
	Env []string
	// Workdir and User override the container's.
	Workdir, User string
	// TTY gives the command a terminal; Stdin feeds its stdin when not nil.
	TTY   bool
	Stdin io.Reader
	// Stdout and Stderr receive its output (with TTY, Stdout gets both).
	Stdout, Stderr io.Writer
	// Terminal, with TTY, is resized with the command's.
	Terminal *Terminal
}

// Exec runs a command in the running container ref and returns its exit code.
func (r *Runtime) Exec(ctx context.Context, ref string, opts ExecOptions) (int, error) {
	if len(opts.Args) == 0 {
		return -1, fmt.Errorf("%w: exec needs a command", ErrInvalid)
	}
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return -1, err
	}
	task, ok := running(ctx, c)
	if !ok {
		return -1, fmt.Errorf("%w: %s: start it first (pouch start %s)", ErrContainerNotRunning, c.ID(), c.ID())
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	for _, o := range processOpts(opts.Args, opts.Env, opts.Workdir, opts.User) {
		if err := o(ctx, r.client, &info, spec); err != nil {
			return -1, fmt.Errorf("%w: exec in %s: %w", ErrInvalid, c.ID(), err)
		}
	}
	pspec := spec.Process
	pspec.Terminal = opts.TTY
	execID, err := randomID()
	if err != nil {
		return -1, err
	}
	cleanupCtx := context.WithoutCancel(ctx)
	var p containerd.Process
	var stdin io.Reader
	ready := make(chan struct{}) // closed once p is set
	if opts.Stdin != nil {
		stdin = &stdinCloser{r: opts.Stdin, close: func() {
			<-ready
			if p != nil {
				_ = p.CloseIO(cleanupCtx, containerd.WithStdinCloser)
			}
		}}
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, orDiscard(opts.Stdout), orDiscard(opts.Stderr))}
	if opts.TTY {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	p, err = task.Exec(ctx, "exec-"+execID, pspec, cio.NewCreator(ioOpts...))
	close(ready)
	if err != nil {
		return -1, execError(c.ID(), err)
	}
	defer p.Delete(cleanupCtx, containerd.WithProcessKill)
	statusC, err := p.Wait(cleanupCtx)
	if err != nil {
		return -1, err
	}
	if err := p.Start(ctx); err != nil {
		return -1, execError(c.ID(), err)
	}
	if opts.TTY && opts.Terminal != nil {
		stop := resizeLoop(ctx, p, opts.Terminal)
		defer stop()
	}
	select {
	case st := <-statusC:
		return int(st.ExitCode()), nil
	case <-ctx.Done():
		_ = p.Kill(cleanupCtx, 9)
		st := <-statusC
		return int(st.ExitCode()), nil
	}
}
