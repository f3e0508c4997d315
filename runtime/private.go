package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
)

// Private is a containerd that Pouch starts itself, with its own root, state and sockets in a
// temporary directory, so that the demo and the integration tests never touch the system's
// containerd. Stop kills what it runs and removes the directory.
type Private struct {
	Address string // gRPC socket
	Version string // as containerd reports it
	Dir     string // root, state, sockets and containerd.log live under it
	cmd     *exec.Cmd
	exited  chan error
	logf    *os.File
}

// StartPrivate starts binDir/containerd (a 2.x one when v2) and waits until it answers. Its
// shim, binDir/containerd-shim-runc-v2, comes first on PATH: Debian's 1.6 shim fails under 2.x.
func StartPrivate(binDir string, v2 bool) (*Private, error) {
	for _, name := range []string{"containerd", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return nil, fmt.Errorf("runtime: %s not found in %s: %w", name, binDir, err)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("runtime: runc not found on PATH: %w", err)
	}
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "pouch-ctd-")
	if err != nil {
		return nil, err
	}
	p := &Private{Address: filepath.Join(dir, "containerd.sock"), Dir: dir, exited: make(chan error, 1)}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(privateConfig(v2, dir)), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if p.logf, err = os.Create(p.LogPath()); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(binDir, "containerd"), "--config", cfgPath)
	p.cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	p.cmd.Stdout, p.cmd.Stderr = p.logf, p.logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("runtime: start containerd: %w", err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-p.exited:
			p.exited <- err
			tail := p.Tail(20)
			p.Stop()
			return nil, fmt.Errorf("runtime: containerd exited at start: %v\n%s", err, tail)
		default:
		}
		v, err := serverVersion(p.Address)
		if err == nil {
			p.Version = v
			return p, nil
		}
		if time.Now().After(deadline) {
			tail := p.Tail(20)
			p.Stop()
			return nil, fmt.Errorf("runtime: containerd did not answer on %s within 30s: %v\n%s", p.Address, err, tail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogPath is containerd's log file.
func (p *Private) LogPath() string { return filepath.Join(p.Dir, "containerd.log") }

// Tail returns the last n lines of containerd's log.
func (p *Private) Tail(n int) string { return TailFile(p.LogPath(), n) }

// TailFile returns the last n lines of a log file, for error messages.
func TailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop kills every task left in the instance, stops containerd and removes its directory.
func (p *Private) Stop() error {
	errs := []error{p.killTasks()}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.logf.Close()
	unmountUnder(p.Dir)
	errs = append(errs, os.RemoveAll(p.Dir))
	return errors.Join(errs...)
}

func privateConfig(v2 bool, dir string) string {
	var b strings.Builder
	if v2 {
		b.WriteString("version = 3\n")
		b.WriteString(`disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri"]` + "\n")
	} else {
		b.WriteString("version = 2\n")
		b.WriteString(`disabled_plugins = ["io.containerd.grpc.v1.cri"]` + "\n")
	}
	fmt.Fprintf(&b, "root = %q\nstate = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "state"))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", filepath.Join(dir, "containerd.sock"))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %q\n", filepath.Join(dir, "containerd.sock.ttrpc"))
	fmt.Fprintf(&b, "\n[debug]\n  address = %q\n", filepath.Join(dir, "debug.sock"))
	b.WriteString("\n[metrics]\n  address = \"\"\n")
	return b.String()
}

func serverVersion(address string) (string, error) {
	if _, err := os.Stat(address); err != nil {
		return "", err
	}
	client, err := containerd.New(address, containerd.WithTimeout(time.Second))
	if err != nil {
		return "", err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := client.Version(ctx)
	return v.Version, err
}

// killTasks kills and deletes every task left behind, so no shim outlives the instance.
func (p *Private) killTasks() error {
	client, err := containerd.New(p.Address, containerd.WithTimeout(2*time.Second))
	if err != nil {
		return nil // not answering: nothing to kill through it
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		return nil
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		cs, err := client.Containers(nctx)
		if err != nil {
			continue
		}
		for _, ctr := range cs {
			task, err := ctr.Task(nctx, nil)
			if err != nil {
				continue
			}
			if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
				errs = append(errs, fmt.Errorf("delete leftover task %s/%s: %w", ns, ctr.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts whatever a crashed container left mounted under dir (deepest first).
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}
