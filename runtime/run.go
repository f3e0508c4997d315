package runtime

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"

	"github.com/pouch-p2p/pouch/runtime/logs"
)

// Terminal is the local terminal a TTY session is shown on.
type Terminal struct {
	// Size returns its columns and rows.
	Size func() (width, height uint32, err error)
	// Resized receives a value whenever its size changes (SIGWINCH).
	Resized <-chan struct{}
}

// RunOptions describe one run in the foreground.
type RunOptions struct {
	CreateOptions
	// Rm removes the container when it exits (as CreateOptions.AutoRemove).
	Rm bool
	// Stdin feeds the container's stdin when CreateOptions.Stdin is set.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output (with TTY, Stdout gets both); nil
	// discards it. The output is kept in the container's log too.
	Stdout, Stderr io.Writer
	// Terminal, with TTY, is resized with the container's.
	Terminal *Terminal
}

// Run creates a container and runs it in the foreground: its stdio are pouch's own, copied
// from and to FIFOs that containerd's shim opens (and into its log), so output arrives as the
// container writes it, byte for byte. exitCode is the container's; err is set only when pouch
// could not run it (ErrCommandNotFound and ErrCannotExecute when its command is missing or
// cannot run). When ctx is cancelled the container gets SIGTERM, then SIGKILL after 10s. With a
// restart policy, a supervisor takes over after the first exit (see HelperMain) and Run
// returns that first exit's code.
func (r *Runtime) Run(ctx context.Context, opts RunOptions) (exitCode int, err error) {
	if opts.Rm {
		opts.AutoRemove = true
	}
	id, err := r.Create(ctx, opts.CreateOptions)
	if err != nil {
		return -1, err
	}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return -1, err
	}
	cleanupCtx := context.WithoutCancel(ctx)
	supervised := opts.Restart.Name != "" && opts.Restart.Name != "no"
	defer func() {
		if opts.AutoRemove {
			if rerr := r.remove(cleanupCtx, c, true); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	labels, err := c.Labels(ctx)
	if err != nil {
		return -1, err
	}
	logw, err := logs.NewWriter(logConfig(labels))
	if err != nil {
		return -1, err
	}
	defer logw.Close()
	stdout := io.MultiWriter(orDiscard(opts.Stdout), logw.StreamWriter(logs.Stdout))
	stderr := io.MultiWriter(orDiscard(opts.Stderr), logw.StreamWriter(logs.Stderr))
	var stdin io.Reader
	var task containerd.Task
	taskReady := make(chan struct{}) // closed once task is set (or failed to be)
	if opts.Stdin != nil && opts.CreateOptions.Stdin {
		// The shim keeps the stdin FIFO open (for a restart): the end of pouch's stdin must be
		// passed on with CloseIO, or the container never sees it. The copy may reach it while
		// the task is still being created.
		stdin = &stdinCloser{r: opts.Stdin, close: func() {
			<-taskReady
			if task != nil {
				_ = task.CloseIO(cleanupCtx, containerd.WithStdinCloser)
			}
		}}
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr)}
	if opts.TTY {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	task, err = r.startTask(ctx, c, cio.NewCreator(ioOpts...), map[string]string{labelDesired: "running"})
	close(taskReady)
	if err != nil {
		return -1, err
	}
	statusC, err := task.Wait(cleanupCtx)
	if err != nil {
		return -1, err
	}
	if supervised {
		if err := r.spawnSupervisor(id); err != nil {
			return -1, err
		}
	}
	if opts.TTY && opts.Terminal != nil {
		stopResize := resizeLoop(ctx, task, opts.Terminal)
		defer stopResize()
	}
	var status containerd.ExitStatus
	select {
	case status = <-statusC:
	case <-ctx.Done():
		_, _ = c.SetLabels(cleanupCtx, map[string]string{labelDesired: "stopped"})
		code, _ := r.stopTask(cleanupCtx, c, task, syscall.SIGTERM, DefaultStopTimeout)
		status = *containerd.NewExitStatus(uint32(code), time.Now(), nil)
	}
	code := int(status.ExitCode())
	if supervised {
		// The supervisor records the exit and restarts; the output of this run is drained.
		done := make(chan struct{})
		go func() { task.IO().Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return code, nil
	}
	if _, err := r.finishTask(cleanupCtx, c, task); err != nil {
		return code, err
	}
	return code, nil
}

// resizeLoop gives the task the terminal's size now and at every change.
func resizeLoop(ctx context.Context, p containerd.Process, t *Terminal) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	resize := func() {
		if w, h, err := t.Size(); err == nil && w > 0 && h > 0 {
			_ = p.Resize(ctx, w, h)
		}
	}
	resize()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.Resized:
				resize()
			}
		}
	}()
	return cancel
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// stdinCloser calls close once its reader is exhausted.
type stdinCloser struct {
	r     io.Reader
	close func()
	once  sync.Once
}

func (s *stdinCloser) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil {
		s.once.Do(s.close)
	}
	return n, err
}
