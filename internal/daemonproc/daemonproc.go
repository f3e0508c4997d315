// Package daemonproc starts a Pouch daemon binary (supernode, dfdaemon) as a child process and
// waits for the one line it prints on stdout when ready: "listening http=ADDR p2p=...". dfbench
// and the end-to-end tests share it.
package daemonproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ReadyTimeout bounds the wait for the ready line.
const ReadyTimeout = 30 * time.Second

// Proc is a started daemon.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	HTTP string // the HTTP address from its ready line
}

// Start runs path with args, its stderr to stderr, and returns once it printed its ready line.
// Cancelling ctx kills it.
func Start(ctx context.Context, name, path string, args []string, stderr io.Writer) (*Proc, error) {
	p := &Proc{Name: name, Cmd: exec.CommandContext(ctx, path, args...)}
	p.Cmd.Stderr = stderr
	p.Cmd.WaitDelay = 5 * time.Second
	// If the harness itself is killed, its daemons must not live on as orphans.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.Cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "http="); ok {
				p.HTTP = v
			}
		}
		if p.HTTP == "" {
			p.Kill()
			return nil, fmt.Errorf("%s did not start (ready line %q)", name, line)
		}
	case <-time.After(ReadyTimeout):
		p.Kill()
		return nil, fmt.Errorf("%s printed no ready line in %v", name, ReadyTimeout)
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
	return p, nil
}

// Kill stops the process and waits for it; it is safe to call more than once.
func (p *Proc) Kill() {
	if p == nil || p.Cmd.Process == nil || p.Cmd.ProcessState != nil {
		return
	}
	p.Cmd.Process.Kill()
	p.Cmd.Wait()
}
