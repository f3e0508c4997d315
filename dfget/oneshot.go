package dfget

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
)

// OneShotConfig is what the one-shot peer takes besides Options' Supernode, DataDir and
// Networks.
type OneShotConfig struct {
	SupernodeCA string // PEM file of the CAs trusted for https:// supernodes
	Secret      string // the cluster secret
	LogLevel    string // the peer's logs, on dfget's stderr (default warn, console)
	LogFormat   string
	// Dfdaemon is the dfdaemon binary that runs the peer; empty: the one next to dfget's own
	// executable, else the one on $PATH.
	Dfdaemon string
}

// oneShot has a dfdaemon process be this download's peer (dfapi.OneShot): dfget links none of
// the daemon, which would make every dfget start as slowly as a daemon, for a mode few use. The
// answer is the local API's, read from the child over a socket pair, so failures are
// *apierr.Error as from any daemon; closing its body stops the child and waits for it, so that
// the temporary store it made is gone when dfget exits.
func oneShot(ctx context.Context, opts Options) (*dfapi.Download, error) {
	bin, err := findDfdaemon(opts.OneShot.Dfdaemon)
	if err != nil {
		return nil, &Error{Code: ExitFailure, Err: err}
	}
	dataDir, removeStore := opts.DataDir, func() {}
	if dataDir == "" {
		// dfget makes and removes the temporary store, so that it goes even when the peer dies
		// before it could remove it (killed by the kernel's OOM killer, say).
		if dataDir, err = os.MkdirTemp("", "dfget-"); err != nil {
			return nil, &Error{Code: ExitFailure, Err: fmt.Errorf("the one-shot peer's store: %w", err)}
		}
		removeStore = func() { os.RemoveAll(dataDir) }
	}
	settings, err := json.Marshal(dfapi.OneShot{
		Supernode: opts.Supernode, SupernodeCA: opts.OneShot.SupernodeCA, Secret: opts.OneShot.Secret, DataDir: dataDir,
		Allow: opts.Networks.Allow, Deny: opts.Networks.Deny, LogLevel: opts.OneShot.LogLevel, LogFormat: opts.OneShot.LogFormat,
	})
	if err != nil {
		removeStore()
		return nil, &Error{Code: ExitFailure, Err: err}
	}
	p, err := startPeer(bin, settings)
	if err != nil {
		removeStore()
		return nil, &Error{Code: ExitFailure, Err: err}
	}
	p.removeStore = removeStore
	c := &dfapi.Client{Base: "http://localhost", HTTP: &http.Client{Transport: &http.Transport{
		DialContext:       p.dial,
		DisableKeepAlives: true, // one request on the one connection
	}}}
	dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: opts.URL, Header: opts.Header, Digest: opts.Digest, Tag: opts.Tag})
	if err == nil {
		dl.Body = &peerBody{ReadCloser: dl.Body, p: p}
		return dl, nil
	}
	waitErr := p.stop()
	var ae *apierr.Error
	switch {
	case p.helloErr != nil:
		return nil, &Error{Code: ExitFailure, Err: p.helloErr}
	case errors.As(err, &ae):
		return nil, classifyAPI(*ae)
	case p.said() != "":
		// The peer could not start (a bad CA file, a store it cannot open, ...): its reason.
		return nil, &Error{Code: ExitFailure, Err: errors.New(p.said())}
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, fail(ExitFailure, "the one-shot peer (%s %s) ended without answering (%v): %w", bin, dfapi.OneShotArg, waitErr, err)
}

// findDfdaemon is the dfdaemon binary that runs the one-shot peer.
func findDfdaemon(named string) (string, error) {
	if named != "" {
		return named, nil // starting it says what is wrong with it
	}
	self, err := os.Executable()
	if err == nil {
		beside := filepath.Join(filepath.Dir(self), "dfdaemon")
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	if p, err := exec.LookPath("dfdaemon"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no dfdaemon binary to run the one-shot peer (--supernode without a local dfdaemon): none next to %s, none on $PATH; install it beside dfget, or name it with --dfdaemon-bin", self)
}

// peer is a running one-shot peer.
type peer struct {
	bin         string
	cmd         *exec.Cmd
	out         *bytes.Buffer // its stdout: why it could not start
	mu          sync.Mutex
	conn        net.Conn // handed to the HTTP transport by the first dial
	dialed      bool
	helloErr    error // the child did not greet as a one-shot peer of this protocol
	removeStore func()
	once        sync.Once
	err         error // of Wait
}

// Bounds on waiting for the one-shot peer: for its greeting (it comes before the peer opens its
// store), and for it to exit once dfget closed their socket (it removes its store first).
var (
	helloTimeout = 10 * time.Second
	stopGrace    = 5 * time.Second
)

// startPeer starts "bin oneshot-peer" with settings on its stdin and its end of a new socket
// pair as file descriptor 3.
func startPeer(bin string, settings []byte) (*peer, error) {
	// Close-on-exec, set under ForkLock as the net package does where SOCK_CLOEXEC is missing:
	// no other child started meanwhile may inherit them.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("the one-shot peer's socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "one-shot peer"), os.NewFile(uintptr(fds[1]), "dfget")
	defer theirs.Close() // the child has its own copy; ours must go for dfget to see it end
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("the one-shot peer's socket: %w", err)
	}
	p := &peer{bin: bin, cmd: exec.Command(bin, dfapi.OneShotArg), out: &bytes.Buffer{}, conn: conn, removeStore: func() {}}
	p.cmd.Stdin = bytes.NewReader(settings)
	p.cmd.Stdout = &capped{b: p.out, max: 64 << 10}
	p.cmd.Stderr = os.Stderr              // its logs, as dfget's own
	p.cmd.ExtraFiles = []*os.File{theirs} // file descriptor 3 = dfapi.OneShotFD
	if err := p.cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot start the one-shot peer: %w", err)
	}
	return p, nil
}

func (p *peer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dialed {
		return nil, errors.New("the one-shot peer serves one connection")
	}
	p.dialed = true
	if err := p.readHello(ctx); err != nil {
		p.helloErr = err
		return nil, err
	}
	return p.conn, nil
}

// readHello reads the child's greeting: a binary that is not a dfdaemon speaking this protocol
// (another program named dfdaemon, an older release) fails here with a message that says so,
// instead of later with a puzzling one.
func (p *peer) readHello(ctx context.Context) error {
	p.conn.SetReadDeadline(time.Now().Add(helloTimeout))
	defer context.AfterFunc(ctx, func() { p.conn.SetReadDeadline(time.Now()) })()
	got := make([]byte, len(dfapi.OneShotHello))
	_, err := io.ReadFull(p.conn, got)
	p.conn.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil || string(got) != dfapi.OneShotHello {
		return fmt.Errorf("%s is not a dfdaemon of this release (it did not answer %q to %q); install this release's dfdaemon beside dfget, or name it with --dfdaemon-bin",
			p.bin, strings.TrimSpace(dfapi.OneShotHello), dfapi.OneShotArg)
	}
	return nil
}

// stop closes the connection, which ends the peer, and waits for it to exit: stopGrace at
// most (at once after a failed greeting), then it is killed, so that dfget never hangs on it.
func (p *peer) stop() error {
	p.once.Do(func() {
		p.conn.Close()
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		grace := stopGrace
		if p.helloErr != nil {
			grace = 0
		}
		select {
		case p.err = <-exited:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			p.err = fmt.Errorf("it did not exit within %v of dfget closing its socket, and was killed: %w", grace, <-exited)
		}
		p.removeStore()
	})
	return p.err
}

// said is what the peer wrote on its stdout, once it has exited.
func (p *peer) said() string { return strings.TrimSpace(p.out.String()) }

// peerBody is the peer's answer; closing it stops the peer.
type peerBody struct {
	io.ReadCloser
	p *peer
}

func (b *peerBody) Close() error {
	b.ReadCloser.Close()
	b.p.stop()
	return nil
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	b   *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
