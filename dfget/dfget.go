// Package dfget downloads one URL through the P2P network and writes it to a file or stdout:
// through the local dfdaemon, or as a one-shot peer (a dfdaemon process it starts) when given a
// supernode. The output file appears only when it is complete and verified (written under a
// temporary name, then renamed); a failure leaves nothing behind and is reported as one of the
// exit codes below. dfget checks --digest itself on every path, although a daemon checks it too
// (and reports a mismatch at the end of its answer): what answers on the daemon's port is not
// authenticated, so the user's digest is the one check no other process on the node can skip.
//
// dfget speaks to a daemon only through its published API (internal/dfapi), the one-shot peer
// included (oneshot.go): it imports none of the daemon, so that it starts fast.
package dfget

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/internal/writeback"
)

// Exit codes, so scripts can tell failures apart.
const (
	ExitOK             = 0
	ExitFailure        = 1 // anything else, e.g. the output cannot be written, or the dfdaemon's store failed
	ExitUsage          = 2 // bad flags, URL or digest
	ExitNotFound       = 3 // the origin has no such file (404, 410)
	ExitOrigin         = 4 // the origin is unreachable, refused, or not allowed
	ExitDigestMismatch = 5 // the content does not match --digest
	ExitTimeout        = 6 // --timeout passed
	ExitDiskFull       = 7 // a disk is full: the dfdaemon's data dir, or where the output is written
)

// Error is a failure with its exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Options of one download.
type Options struct {
	URL       string
	Output    string // a path, or "-" for stdout
	Daemon    string // local dfdaemon base URL
	Supernode string // when set and Daemon is empty: start a dfdaemon as a one-shot peer
	DataDir   string // the one-shot peer's store (default: a temporary directory)
	Digest    digest.Digest
	Header    http.Header
	Tag       string
	Timeout   time.Duration
	Progress  bool // draw a progress bar on stderr
	Log       *zap.Logger
	// Notices, when set, takes the one plain line dfget says to its user when it falls back to
	// the origin because no dfdaemon answers; without it the line goes to Log as a warning.
	Notices io.Writer
	// Networks is the SSRF policy of every fetch dfget makes itself: straight from the origin
	// when no daemon answers, and the one-shot peer's (a daemon applies its own).
	Networks netguard.Policy
	// OneShot configures the one-shot peer besides Supernode, DataDir and Networks.
	OneShot OneShotConfig
}

// Run downloads opts.URL to opts.Output.
func Run(ctx context.Context, opts Options) error {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(ExitUsage, "%q is not an http or https URL", taskid.Redact(opts.URL, taskid.DefaultFilter))
	}
	if opts.Digest != "" {
		if err := opts.Digest.Validate(); err != nil || opts.Digest.Algorithm() != digest.SHA256 {
			return fail(ExitUsage, "--digest %q is not a sha256:<64 hex> digest", opts.Digest)
		}
	}
	if opts.Output == "" {
		return fail(ExitUsage, "an output file is required (-O FILE, or -O - for stdout)")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	err = run(ctx, opts, u)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fail(ExitTimeout, "timed out after %v", opts.Timeout)
	}
	return err
}

func run(ctx context.Context, opts Options, u *url.URL) error {
	out, err := createOutput(opts.Output)
	if err != nil {
		return &Error{Code: ExitFailure, Err: err}
	}
	defer out.abort()

	var dl *dfapi.Download
	if opts.Daemon == "" && opts.Supernode != "" {
		dl, err = oneShot(ctx, opts)
	} else {
		dl, err = viaDaemon(ctx, opts)
	}
	if err != nil {
		return err
	}
	defer dl.Body.Close()
	size := dl.Size

	// Checked here even when a daemon checked it too: a process that took the daemon's port
	// while no daemon ran could send anything (docs/benchmarks.md, "CPU per byte on a node":
	// this third SHA-256 of every byte costs dfget about a third of its CPU, and is kept).
	body := dl.Body
	if opts.Digest != "" {
		body = &digestChecked{ReadCloser: body, h: sha256.New(), want: opts.Digest}
	}
	w := io.Writer(out)
	if opts.Progress {
		bar := progressbar.DefaultBytes(size, path.Base(u.Path))
		w = io.MultiWriter(w, bar)
		defer bar.Finish()
	}
	// Large reads and writes: a daemon sends its answer in chunks of up to 256 KiB (dfdaemon's
	// answerChunk), and each 32 KiB of io.Copy's own buffer was a read and a write.
	n, err := io.CopyBuffer(w, body, make([]byte, 256<<10))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return classifyAPI(*ae)
		}
		if diskFull(err) {
			return fail(ExitDiskFull, "disk full: cannot write %s after %d bytes: %w", opts.Output, n, err)
		}
		return fail(ExitFailure, "download interrupted after %d bytes: %w", n, err)
	}
	if size >= 0 && n != size {
		return fail(ExitFailure, "download interrupted: got %d of %d bytes", n, size)
	}
	if err := out.commit(); err != nil {
		if diskFull(err) {
			return fail(ExitDiskFull, "disk full: cannot write %s: %w", opts.Output, err)
		}
		return &Error{Code: ExitFailure, Err: err}
	}
	return nil
}

// diskFull says whether a local write failed for want of space (ENOSPC) or quota (EDQUOT).
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// viaDaemon asks the local dfdaemon for the content; when no daemon answers at all, it fetches
// straight from the origin, since a download must not fail because the P2P layer is down.
func viaDaemon(ctx context.Context, opts Options) (*dfapi.Download, error) {
	c, err := dfapi.NewClient(opts.Daemon)
	if err != nil {
		return nil, fail(ExitUsage, "bad --daemon %q: %w", opts.Daemon, err)
	}
	dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: opts.URL, Header: opts.Header, Digest: opts.Digest, Tag: opts.Tag})
	var ae *apierr.Error
	var op *net.OpError
	switch {
	case err == nil:
		return dl, nil
	case errors.As(err, &ae):
		return nil, classifyAPI(*ae)
	case ctx.Err() == nil && errors.As(err, &op) && op.Op == "dial":
		notice := fmt.Sprintf("no dfdaemon answers at %s (%s): downloading from the origin directly", opts.Daemon, dialCause(op))
		if opts.Notices != nil {
			fmt.Fprintln(opts.Notices, "dfget:", notice)
			opts.Log.Debug("dfdaemon unreachable", zap.String("daemon", opts.Daemon), zap.Error(err))
		} else {
			opts.Log.Warn(notice, zap.Error(err))
		}
		return direct(ctx, opts)
	}
	return nil, &Error{Code: ExitFailure, Err: err}
}

// dialCause is what failed in a dial, without the request and address the error repeats: the
// notice names the daemon itself ("connection refused", "no such host").
func dialCause(op *net.OpError) string {
	var sys *os.SyscallError
	var dns *net.DNSError
	switch {
	case errors.As(op.Err, &sys):
		return sys.Err.Error()
	case errors.As(op.Err, &dns):
		return dns.Err
	}
	return op.Err.Error()
}

// direct fetches from the origin without P2P, under the same SSRF policy as a daemon.
func direct(ctx context.Context, opts Options) (*dfapi.Download, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, opts.URL, nil)
	if err != nil {
		return nil, &Error{Code: ExitUsage, Err: err}
	}
	for k, vs := range opts.Header {
		req.Header[k] = vs
	}
	resp, err := opts.Networks.Client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, netguard.ErrForbidden) {
			return nil, fail(ExitOrigin, "origin not allowed: %w", taskid.RedactError(err, nil))
		}
		return nil, fail(ExitOrigin, "origin unreachable: %w", taskid.RedactError(err, nil))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		code := ExitOrigin
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
			code = ExitNotFound
		}
		return nil, fail(code, "origin answered %d %s for %s", resp.StatusCode, http.StatusText(resp.StatusCode), taskid.Redact(opts.URL, taskid.DefaultFilter))
	}
	return &dfapi.Download{Body: resp.Body, Size: resp.ContentLength}, nil
}

// digestChecked hashes what it reads and ends, instead of io.EOF, with the error a daemon's
// trailer would carry (CodeDigestMismatch) when the content is not want.
type digestChecked struct {
	io.ReadCloser
	h    hash.Hash
	want digest.Digest
}

func (c *digestChecked) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := digest.NewDigest(digest.SHA256, c.h); got != c.want {
			return n, &apierr.Error{Code: apierr.CodeDigestMismatch, Message: fmt.Sprintf("digest mismatch: content is %s, want %s", got, c.want)}
		}
	}
	return n, err
}

// classifyAPI turns a daemon's error answer into dfget's exit code.
func classifyAPI(e apierr.Error) error {
	code := ExitFailure
	switch e.Code {
	case apierr.CodeBadRequest:
		code = ExitUsage
	case apierr.CodeOriginStatus:
		code = ExitOrigin
		if e.OriginStatus == http.StatusNotFound || e.OriginStatus == http.StatusGone {
			code = ExitNotFound
		}
	case apierr.CodeOriginUnreachable, apierr.CodeForbidden:
		code = ExitOrigin
	case apierr.CodeDigestMismatch:
		code = ExitDigestMismatch
	case apierr.CodeLocal:
		// The daemon's own disk or store failed: say so, since the origin is fine.
		return &Error{Code: ExitFailure, Err: fmt.Errorf("dfdaemon: %w", &e)}
	case apierr.CodeDiskFull:
		// Its message starts with "disk full": the operator frees space in its data dir.
		return &Error{Code: ExitDiskFull, Err: fmt.Errorf("dfdaemon: %w", &e)}
	}
	return &Error{Code: code, Err: &e}
}

// output is a file written under a temporary name and renamed when complete, or, when the path
// is a device or a pipe (-O /dev/null), written in place: a rename would replace the device with a
// regular file, for every process on the machine when dfget runs as root.
//
// A temporary file is synced before the rename. So that the sync does not find the whole file
// still to write — 128 MiB for each of 16 dfgets finishing at once took up to 0.9 s in
// docs/benchmarks.md, "Where the time goes" — the kernel is asked to start writing each
// writebackEvery bytes back as soon as they are written (Linux; elsewhere the sync does it all).
type output struct {
	f         *os.File
	tmp, path string
	inPlace   bool // f is the path itself, opened for writing, closed at the end
	done      bool

	written, started int64 // bytes written; bytes whose writeback was started
	noWriteback      bool  // the file system does not support it: leave it to the sync
	writebackErr     error // a failure the kernel reported early; the commit fails with it
}

// writebackEvery is how many written bytes wait before their writeback is started.
const writebackEvery = 8 << 20

func createOutput(path string) (*output, error) {
	if path == "-" {
		return &output{f: os.Stdout}, nil
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", path, err)
		}
		return &output{f: f, path: path, inPlace: true}, nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".dfget-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return &output{f: f, tmp: f.Name(), path: path}, nil
}

func (o *output) Write(p []byte) (int, error) {
	n, err := o.f.Write(p)
	o.written += int64(n)
	if o.tmp != "" && !o.noWriteback && o.writebackErr == nil && o.written-o.started >= writebackEvery {
		switch werr := writeback.Start(o.f, o.started, o.written-o.started); {
		case errors.Is(werr, errors.ErrUnsupported):
			o.noWriteback = true
		case werr != nil:
			o.writebackErr = fmt.Errorf("cannot write %s: %w", o.path, werr)
		default:
			o.started = o.written
		}
	}
	return n, err
}

func (o *output) commit() error {
	if o.tmp == "" {
		o.done = true
		if o.inPlace {
			return o.f.Close()
		}
		return nil
	}
	if o.writebackErr != nil {
		return o.writebackErr // a page the kernel could not write; a sync may not say so again
	}
	if err := o.f.Sync(); err != nil {
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(o.tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(o.tmp, o.path); err != nil {
		return err
	}
	o.done = true
	return nil
}

func (o *output) abort() {
	if o.done {
		return
	}
	if o.tmp == "" {
		if o.inPlace {
			o.f.Close()
		}
		return
	}
	o.f.Close()
	os.Remove(o.tmp)
}

// ParseHeader reads a -H "Name: value" flag.
func ParseHeader(h http.Header, s string) error {
	name, value, ok := bytes.Cut([]byte(s), []byte(":"))
	if !ok || len(bytes.TrimSpace(name)) == 0 {
		return fail(ExitUsage, "header %q must look like 'Name: value'", s)
	}
	h.Add(string(bytes.TrimSpace(name)), string(bytes.TrimSpace(value)))
	return nil
}
