package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/moby/sys/signal"

	"github.com/pouch-p2p/pouch/runtime/logs"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// DefaultStopTimeout is how long Stop waits after the stop signal before it kills.
const DefaultStopTimeout = 10 * time.Second

// resolve finds a container by its name or a unique prefix of it.
func (r *Runtime) resolve(ctx context.Context, ref string) (containerd.Container, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty name", ErrContainerNotFound)
	}
	c, err := r.client.LoadContainer(ctx, ref)
	if err == nil {
		return c, nil
	}
	if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	all, err := r.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var matches []containerd.Container
	for _, c := range all {
		if strings.HasPrefix(c.ID(), ref) {
			matches = append(matches, c)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s (pouch ps -a lists them)", ErrContainerNotFound, ref)
	}
	var names []string
	for _, m := range matches {
		names = append(names, m.ID())
	}
	sort.Strings(names)
	return nil, fmt.Errorf("%w: %s is a prefix of %s: give more of the name", ErrContainerNotFound, ref, strings.Join(names, ", "))
}

// running returns the container's task when it is running (or paused, or created).
func running(ctx context.Context, c containerd.Container) (containerd.Task, bool) {
	task, err := c.Task(ctx, nil)
	if err != nil {
		return nil, false
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status == containerd.Stopped {
		return task, false
	}
	return task, true
}

func logConfig(labels map[string]string) logs.Config {
	var cfg logs.Config
	_ = json.Unmarshal([]byte(labels[labelLog]), &cfg)
	if cfg.Path == "" && labels[labelDir] != "" {
		cfg.Path = filepath.Join(labels[labelDir], "container.log")
	}
	return cfg
}

func portsOf(labels map[string]string) []network.PortMapping {
	var ports []network.PortMapping
	_ = json.Unmarshal([]byte(labels[labelPorts]), &ports)
	return ports
}

// loggerIO is the IO of a task nobody attaches to: the shim starts the helper as its logger.
func (r *Runtime) loggerIO(labels map[string]string, tty bool) (cio.Creator, error) {
	if r.cfg.Helper == "" {
		return nil, errors.New("runtime: Config.Helper is not set: a detached container needs the pouch binary as its logger")
	}
	cfg, err := json.Marshal(logConfig(labels))
	if err != nil {
		return nil, err
	}
	args := map[string]string{helperLogger: string(cfg)}
	if tty {
		return cio.TerminalBinaryIO(r.cfg.Helper, args), nil
	}
	return cio.BinaryIO(r.cfg.Helper, args), nil
}

// startTask deletes the container's stopped task, if any (recording its exit), makes sure its
// network is there (a reboot removes the namespace), and starts a new task with the given IO.
// Only a user's start sets the desired state (in extraLabels): a restart by the supervisor must
// not undo a stop that came meanwhile.
func (r *Runtime) startTask(ctx context.Context, c containerd.Container, creator cio.Creator, extraLabels map[string]string) (containerd.Task, error) {
	id := c.ID()
	if old, err := c.Task(ctx, nil); err == nil {
		if _, err := r.finishTask(ctx, c, old); err != nil {
			return nil, err
		}
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	mode := network.Mode(labels[labelNetwork])
	if mode != network.Host && mode != "" && !r.net.Attached(id) {
		// What the plugins keep beyond the namespace (the address lease, NAT rules) is
		// released first, so the network is set up as new.
		_ = r.net.Teardown(ctx, id, mode, portsOf(labels))
		att, err := r.net.Setup(ctx, id, mode, portsOf(labels))
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", id, err)
		}
		if att.IP != "" {
			extraLabels = withLabel(extraLabels, labelIP, att.IP)
		}
	}
	task, err := c.NewTask(ctx, creator)
	if err != nil {
		return nil, execError(id, err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		return nil, execError(id, err)
	}
	extraLabels = withLabel(extraLabels, labelStartedAt, time.Now().UTC().Format(time.RFC3339Nano))
	extraLabels = withLabel(extraLabels, labelFinishedAt, "")
	if _, err := c.SetLabels(ctx, extraLabels); err != nil {
		return task, fmt.Errorf("container %s: %w", id, err)
	}
	return task, nil
}

func withLabel(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// execError turns runc's failure to execute the container's command into ErrCommandNotFound
// or ErrCannotExecute (docker's 127 and 126).
func execError(id string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return fmt.Errorf("%w: container %s: %w", ErrCommandNotFound, id, err)
	case strings.Contains(msg, "permission denied") || strings.Contains(msg, "exec format error"):
		return fmt.Errorf("%w: container %s: %w", ErrCannotExecute, id, err)
	}
	return fmt.Errorf("start %s: %w", id, err)
}

// finishTask records a stopped task's exit code and time on the container, then deletes the
// task. The labels come first, so the container is never seen without both a task and its
// exit.
func (r *Runtime) finishTask(ctx context.Context, c containerd.Container, task containerd.Task) (int, error) {
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return -1, nil // someone else (the supervisor) finished it
	}
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	code := -1
	if st.Status == containerd.Stopped {
		code = int(st.ExitStatus)
		finished := st.ExitTime
		if finished.IsZero() || finished.Year() < 2000 {
			finished = time.Now()
		}
		if _, err := c.SetLabels(ctx, map[string]string{
			LabelExitCode:   strconv.Itoa(code),
			labelFinishedAt: finished.UTC().Format(time.RFC3339Nano),
		}); err != nil && !errdefs.IsNotFound(err) {
			return code, fmt.Errorf("container %s: %w", c.ID(), err)
		}
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		if _, terr := c.Task(ctx, nil); !errdefs.IsNotFound(terr) {
			return code, fmt.Errorf("container %s: delete its task: %w (stop it first)", c.ID(), err)
		}
	}
	return code, nil
}

// Start starts a created or stopped container in the background, its output kept in its log,
// under a supervisor that applies its restart policy (and --rm). Starting a running container
// does nothing. It returns the container's ID.
func (r *Runtime) Start(ctx context.Context, ref string) (string, error) {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	if _, ok := running(ctx, c); ok {
		return c.ID(), nil
	}
	if err := r.startDetached(ctx, c); err != nil {
		return "", err
	}
	return c.ID(), nil
}

func (r *Runtime) startDetached(ctx context.Context, c containerd.Container) error {
	labels, err := c.Labels(ctx)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID(), err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID(), err)
	}
	creator, err := r.loggerIO(labels, spec.Process != nil && spec.Process.Terminal)
	if err != nil {
		return err
	}
	if _, err := r.startTask(ctx, c, creator, map[string]string{labelRestartCount: "0", labelDesired: "running"}); err != nil {
		return err
	}
	return r.spawnSupervisor(c.ID())
}

// Stop sends the container its stop signal (the image's STOPSIGNAL, else SIGTERM), waits up to
// timeout for it to exit, then kills it. A stopped container is not restarted by its policy.
// It returns the exit code (-1 when it was not running).
func (r *Runtime) Stop(ctx context.Context, ref string, timeout time.Duration) (int, error) {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return -1, err
	}
	if _, err := c.SetLabels(ctx, map[string]string{labelDesired: "stopped"}); err != nil {
		return -1, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	task, ok := running(ctx, c)
	if !ok {
		return -1, nil
	}
	labels, _ := c.Labels(ctx)
	sig := syscall.SIGTERM
	if s := labels[labelStopSignal]; s != "" {
		if parsed, err := signal.ParseSignal(s); err == nil {
			sig = parsed
		}
	}
	return r.stopTask(ctx, c, task, sig, timeout)
}

// stopTask signals the task, kills it after timeout, and returns its exit code.
func (r *Runtime) stopTask(ctx context.Context, c containerd.Container, task containerd.Task, sig syscall.Signal, timeout time.Duration) (int, error) {
	statusC, err := task.Wait(ctx)
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return -1, fmt.Errorf("signal container %s: %w", c.ID(), err)
	}
	select {
	case st := <-statusC:
		return int(st.ExitCode()), nil
	case <-time.After(timeout):
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return -1, fmt.Errorf("kill container %s: %w", c.ID(), err)
	}
	select {
	case st := <-statusC:
		return int(st.ExitCode()), nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// stoppingSignals end a container on purpose: after one of them the restart policy does not
// apply, as docker has it for stop and kill.
var stoppingSignals = map[syscall.Signal]bool{syscall.SIGKILL: true, syscall.SIGTERM: true, syscall.SIGINT: true, syscall.SIGQUIT: true}

// Kill sends the container a signal (a name such as "HUP" or "SIGHUP", or a number; empty is
// SIGKILL). After a signal that stops it, its restart policy does not restart it.
func (r *Runtime) Kill(ctx context.Context, ref, sig string) error {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return err
	}
	s := syscall.SIGKILL
	if sig != "" {
		if s, err = signal.ParseSignal(sig); err != nil {
			return fmt.Errorf("%w: signal %q: %w", ErrInvalid, sig, err)
		}
	}
	task, ok := running(ctx, c)
	if !ok {
		return fmt.Errorf("%w: %s (pouch start %s)", ErrContainerNotRunning, c.ID(), c.ID())
	}
	if stoppingSignals[s] {
		if _, err := c.SetLabels(ctx, map[string]string{labelDesired: "stopped"}); err != nil {
			return fmt.Errorf("container %s: %w", c.ID(), err)
		}
	}
	if err := task.Kill(ctx, s); err != nil {
		return fmt.Errorf("signal container %s: %w", c.ID(), err)
	}
	return nil
}

// Restart stops the container (as Stop) and starts it again (as Start).
func (r *Runtime) Restart(ctx context.Context, ref string, timeout time.Duration) (string, error) {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	if _, err := r.Stop(ctx, c.ID(), timeout); err != nil {
		return "", err
	}
	// The supervisor of the run just stopped may still be recording its exit: wait for it so
	// the new one is the only one.
	r.waitSupervisor(ctx, c.ID(), 10*time.Second)
	return r.Start(ctx, c.ID())
}

// RemoveContainer removes a stopped container (see Remove).
func (r *Runtime) RemoveContainer(ctx context.Context, ref string) error {
	return r.Remove(ctx, ref, false)
}

// Remove removes a container: its task (a running one only with force, killed), its network
// and namespace, its snapshot, its log and directory. Named volumes stay. It cleans up after a
// crash too: a namespace or directory already gone is not an error.
func (r *Runtime) Remove(ctx context.Context, ref string, force bool) error {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return err
	}
	return r.remove(ctx, c, force)
}

func (r *Runtime) remove(ctx context.Context, c containerd.Container, force bool) error {
	id := c.ID()
	labels, err := c.Labels(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s", ErrContainerNotFound, id)
		}
		return fmt.Errorf("container %s: %w", id, err)
	}
	task, isRunning := running(ctx, c)
	if isRunning && !force {
		return fmt.Errorf("%w: %s: stop it first (pouch stop %s) or remove it with pouch rm -f", ErrContainerRunning, id, id)
	}
	// No restart from here on, also for a container between two runs of its policy.
	if _, err := c.SetLabels(ctx, map[string]string{labelDesired: "stopped"}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if isRunning {
		if _, err := r.stopTask(ctx, c, task, syscall.SIGKILL, time.Minute); err != nil {
			return err
		}
	}
	// The supervisor records the exit and deletes the task: let it finish rather than race it.
	r.waitSupervisor(ctx, id, 10*time.Second)
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			if _, terr := c.Task(ctx, nil); !errdefs.IsNotFound(terr) {
				return fmt.Errorf("container %s: delete its task: %w", id, err)
			}
		}
	}
	var errs []error
	if mode := network.Mode(labels[labelNetwork]); mode != "" {
		if err := r.net.Teardown(ctx, id, mode, portsOf(labels)); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", id, err))
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return errors.Join(append(errs, fmt.Errorf("remove container %s: %w", id, err))...)
	}
	if dir := labels[labelDir]; dir != "" && filepath.IsAbs(dir) && filepath.Base(dir) == id {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
