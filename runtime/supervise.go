package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/pouch-p2p/pouch/internal/logging"
	"github.com/pouch-p2p/pouch/runtime/logs"
)

// The helper's roles, named by its first argument.
const (
	helperLogger    = "pouch-internal-logger"
	helperSupervise = "pouch-internal-supervise"
)

// HelperMain runs the helper role args name, if any, and then exits the process; it returns
// false, doing nothing, for any other args. The pouch command (and a test binary that sets
// Config.Helper to itself) calls it first thing in main, before parsing flags:
//
//   - "pouch-internal-logger CONFIG": containerd's shim runs this as a detached task's logger
//     (its binary:// IO), with the task's stdout and stderr on fds 3 and 4 (logs.RunLogger).
//   - "pouch-internal-supervise ARGS": pouch starts this, in its own session, beside every
//     detached container: it waits for the task to exit, records the exit, deletes the task
//     (so no shim lingers), restarts it as the restart policy says unless a user stopped it,
//     and removes it when it was run with --rm.
//
// The supervisor is a small process per container rather than containerd's restart plugin,
// which polls every 10 seconds, has no on-failure count on containerd 1.6, and would leave
// exit codes, --rm and the stop that must not restart to pouch anyway.
func HelperMain(args []string) bool {
	if len(args) != 3 {
		return false
	}
	switch args[1] {
	case helperLogger:
		var cfg logs.Config
		if err := json.Unmarshal([]byte(args[2]), &cfg); err != nil || cfg.Path == "" {
			fmt.Fprintf(os.Stderr, "pouch logger: bad config %q: %v\n", args[2], err)
			os.Exit(1)
		}
		logs.RunLogger(cfg) // exits
	case helperSupervise:
		if err := supervise(args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "pouch supervisor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	return false
}

type supervisorArgs struct {
	Config Config `json:"config"`
	ID     string `json:"id"`
}

func supervisorLock(dir string) string { return filepath.Join(dir, "supervisor.lock") }

// spawnSupervisor starts the helper as container id's supervisor, detached from pouch.
func (r *Runtime) spawnSupervisor(id string) error {
	if r.cfg.Helper == "" {
		return errors.New("runtime: Config.Helper is not set: a detached container needs the pouch binary as its supervisor")
	}
	arg, err := json.Marshal(supervisorArgs{Config: r.cfg, ID: id})
	if err != nil {
		return err
	}
	dir := filepath.Join(r.cfg.Root, "containers", id)
	logf, err := os.OpenFile(filepath.Join(dir, "supervisor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("container %s: supervisor log: %w", id, err)
	}
	defer logf.Close()
	cmd := exec.Command(r.cfg.Helper, helperSupervise, string(arg))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("container %s: start its supervisor %s: %w", id, r.cfg.Helper, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it when pouch lives longer than the container
	// Return once it holds the lock, so whoever looks next (logs -f, rm) knows it is there.
	deadline := time.Now().Add(10 * time.Second)
	for !supervisorActive(dir) {
		select {
		case err := <-exited:
			if err == nil {
				return nil // done already: a quick container that is not restarted
			}
			return fmt.Errorf("container %s: its supervisor failed (%w); see %s", id, err, logf.Name())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s: its supervisor did not start within 10s; see %s", id, logf.Name())
		}
	}
	return nil
}

// supervisorActive reports whether a supervisor holds container dir's lock.
func supervisorActive(dir string) bool {
	f, err := os.Open(supervisorLock(dir))
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
}

// waitSupervisor waits up to timeout for container id's supervisor to exit.
func (r *Runtime) waitSupervisor(ctx context.Context, id string, timeout time.Duration) {
	dir := filepath.Join(r.cfg.Root, "containers", id)
	deadline := time.Now().Add(timeout)
	for supervisorActive(dir) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

func supervise(arg string) error {
	var a supervisorArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return fmt.Errorf("bad arguments: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, err := logging.New("info", logging.FormatConsole)
	if err != nil {
		return err
	}
	log = log.Named("supervisor").With(zap.String("container", a.ID))
	dir := filepath.Join(a.Config.Root, "containers", a.ID)
	// One supervisor per container: a second one (a start while the last run's supervisor
	// records its exit) waits for the lock, then finds the new task to watch.
	lockf, err := os.OpenFile(supervisorLock(dir), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	defer lockf.Close()
	deadline := time.Now().Add(30 * time.Second)
	for unix.Flock(int(lockf.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			log.Info("another supervisor is still active; leaving it the container")
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Config.Log = log
	r, err := New(ctx, a.Config)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.superviseLoop(ctx, a.ID, log)
}

// superviseLoop watches container id's task until the container is stopped by a user, its
// policy gives up, or it is removed.
func (r *Runtime) superviseLoop(ctx context.Context, id string, log *zap.Logger) error {
	backoff := 100 * time.Millisecond
	for {
		c, err := r.client.LoadContainer(ctx, id)
		if errdefs.IsNotFound(err) {
			log.Info("container removed")
			return nil
		}
		if err != nil {
			return err
		}
		task, err := c.Task(ctx, nil)
		if errdefs.IsNotFound(err) {
			log.Info("no task to watch: stopped and cleaned up by someone else")
			return nil
		}
		if err != nil {
			return err
		}
		statusC, err := task.Wait(ctx)
		if err != nil {
			return err
		}
		started := time.Now()
		var st containerd.ExitStatus
		select {
		case st = <-statusC:
		case <-ctx.Done():
			return nil
		}
		if err := st.Error(); err != nil {
			return fmt.Errorf("wait for the task: %w", err)
		}
		labels, err := c.Labels(ctx)
		if err != nil {
			return err
		}
		code, err := r.finishTask(ctx, c, task)
		if err != nil {
			return err
		}
		if code < 0 {
			code = int(st.ExitCode())
		}
		log.Info("exited", zap.Int("code", code))
		policy, _ := ParseRestart(labels[labelRestart])
		count, _ := strconv.Atoi(labels[labelRestartCount])
		if labels[labelDesired] == "stopped" || !policy.restarts(code, count) {
			log.Info("not restarting", zap.String("policy", policy.String()), zap.Int("restarts", count), zap.String("desired", labels[labelDesired]))
			if labels[labelAutoRemove] == "true" {
				return r.remove(ctx, c, false)
			}
			return nil
		}
		// Docker's back-off: doubled after every quick exit, back to the start after a run
		// of ten seconds or more.
		if time.Since(started) >= 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		if !waitRestart(ctx, c, backoff) {
			return nil
		}
		backoff = min(2*backoff, time.Minute)
		if labels, err = c.Labels(ctx); err != nil {
			return err
		}
		spec, err := c.Spec(ctx)
		if err != nil {
			return err
		}
		creator, err := r.loggerIO(labels, spec.Process != nil && spec.Process.Terminal)
		if err != nil {
			return err
		}
		task, err = r.startTask(ctx, c, creator, map[string]string{labelRestartCount: strconv.Itoa(count + 1)})
		if err != nil {
			log.Warn("restart failed", zap.Error(err))
			return err
		}
		log.Info("restarted", zap.Int("restarts", count+1))
		// A stop that came while the task was being made did not see it running: end it; the
		// next turn records the exit and leaves the container stopped.
		if labels, err := c.Labels(ctx); err == nil && labels[labelDesired] == "stopped" {
			_ = task.Kill(ctx, syscall.SIGKILL)
		}
	}
}

// waitRestart sleeps d before a restart, and reports false as soon as a user stops or removes
// the container meanwhile (or the supervisor is told to end).
func waitRestart(ctx context.Context, c containerd.Container, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		labels, err := c.Labels(ctx)
		if err != nil || labels[labelDesired] == "stopped" {
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		select {
		case <-time.After(min(left, 100*time.Millisecond)):
		case <-ctx.Done():
			return false
		}
	}
}
