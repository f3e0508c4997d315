package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
)

// The components, as they are named in errors and log files (<component>.log in the log dir).
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Containerd        = "containerd"
	Kubelet           = "kubelet"
)

// tailLines is how much of a component's log an error carries.
const tailLines = 40

// proc is one component running as a child process, its output in its log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed when the process is gone; err is set then
	err    error
}

// spawn starts a component. It gets its own process group, so stopping it reaches what it forked,
// and dies with the test process, so a killed test leaves no control plane behind.
func (n *Node) spawn(name, bin string, args ...string) error {
	f, err := os.Create(n.LogPath(name))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// The command line heads the log, so the component can be rerun by hand as it was run here.
	fmt.Fprintf(f, "# %s\n", strings.Join(append([]string{bin}, args...), " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = n.Dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	n.procs = append(n.procs, p)
	return nil
}

// stop sends SIGTERM to the component's process group and SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	return p.log.Close()
}

// LogPath is the log file of a component.
func (n *Node) LogPath(component string) string {
	return filepath.Join(n.logDir, component+".log")
}

// Tail is the end of a component's log, for failure messages.
func (n *Node) Tail(component string) string {
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", tailLines, n.LogPath(component), daemon.TailFile(n.LogPath(component), tailLines))
}

// componentError names the component that failed and carries the tail of its log.
func (n *Node) componentError(component string, err error) error {
	return fmt.Errorf("%s: %w\n%s", component, err, n.Tail(component))
}

// exitedComponent reports the first component whose process is gone.
func (n *Node) exitedComponent() (string, error) {
	for _, p := range n.procs {
		select {
		case <-p.exited:
			return p.name, fmt.Errorf("exited: %v", p.err)
		default:
		}
	}
	return "", nil
}

// waitFor polls check until it succeeds. It fails naming component, with its log (none when
// component is ""), when ctx ends first; naming the component that died when one of them exits
// meanwhile; at once when check returns a stopWaiting error.
func (n *Node) waitFor(ctx context.Context, component, what string, check func(context.Context) error) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if stop := (stopWaiting{}); errors.As(err, &stop) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if name, exitErr := n.exitedComponent(); name != "" {
			return n.componentError(name, fmt.Errorf("while waiting for %s: %w", what, exitErr))
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("%s: %w (last check: %v)", what, ctx.Err(), err)
			if component == "" {
				return err
			}
			return n.componentError(component, err)
		case <-tick.C:
		}
	}
}

// errNotYet is what a check returns for a condition that is not met yet.
var errNotYet = errors.New("not yet")
