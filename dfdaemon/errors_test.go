package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/piece"
)

// Each failure a download can meet, as the dfdaemon's API reports it to dfget, with its cause
// still reachable through errors.Is and errors.As.
func TestClassify(t *testing.T) {
	t.Parallel()
	const origin = "http://origin.example/file"
	// What a dial to a closed port looks like through net/http.
	refused := &url.Error{Op: "Get", URL: origin, Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	// A disk-full write inside source.Fill, as the piece store wraps it.
	diskFull := fmt.Errorf("origin %s: piece 3: %w", origin,
		fmt.Errorf("task sha256:ab at offset 0: write data: %w", &fs.PathError{Op: "write", Path: "/var/lib/dfdaemon/tasks/ab", Err: syscall.ENOSPC}))
	supernode := func(code apierr.Code, originStatus int) error {
		return &snapi.StatusError{Status: http.StatusBadGateway, Err: apierr.Error{Message: "seed: " + string(code), Code: code, OriginStatus: originStatus}}
	}
	odd := errors.New("something nobody planned for")

	cases := []struct {
		name   string
		err    error
		origin bool // met while fetching from the origin (fromOrigin), else anywhere (classify)
		kind   error
		code   apierr.Code
		status int
		cause  error // errors.Is(classified, cause) must hold
	}{
		{"origin 404", &source.StatusError{URL: origin, Status: 404}, true, ErrOriginStatus, apierr.CodeOriginStatus, 404, nil},
		{"origin 401", &source.StatusError{URL: origin, Status: 401}, true, ErrOriginStatus, apierr.CodeOriginStatus, 401, nil},
		{"origin 500", &source.StatusError{URL: origin, Status: 500}, true, ErrOriginStatus, apierr.CodeOriginStatus, 502, nil},
		{"ssrf refused at dial", &url.Error{Op: "Get", URL: origin, Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: fmt.Errorf("%w: 169.254.169.254 is link-local", netguard.ErrForbidden)}}, true, ErrForbidden, apierr.CodeForbidden, 403, netguard.ErrForbidden},
		{"connection refused", refused, true, ErrOriginUnreachable, apierr.CodeOriginUnreachable, 502, syscall.ECONNREFUSED},
		{"network error anywhere", refused, false, ErrOriginUnreachable, apierr.CodeOriginUnreachable, 502, syscall.ECONNREFUSED},
		{"body cut short", fmt.Errorf("read piece: %w", io.ErrUnexpectedEOF), true, ErrOriginUnreachable, apierr.CodeOriginUnreachable, 502, io.ErrUnexpectedEOF},
		{"supernode: origin_status", supernode(apierr.CodeOriginStatus, 404), false, ErrOriginStatus, apierr.CodeOriginStatus, 404, nil},
		{"supernode: origin_unreachable", supernode(apierr.CodeOriginUnreachable, 0), false, ErrOriginUnreachable, apierr.CodeOriginUnreachable, 502, nil},
		{"supernode: forbidden", supernode(apierr.CodeForbidden, 0), false, ErrForbidden, apierr.CodeForbidden, 403, nil},
		{"supernode: bad_request", supernode(apierr.CodeBadRequest, 0), false, ErrBadRequest, apierr.CodeBadRequest, 400, nil},
		{"supernode: digest_mismatch", supernode(apierr.CodeDigestMismatch, 0), false, ErrDigestMismatch, apierr.CodeDigestMismatch, 502, nil},
		{"supernode: not_found", supernode(apierr.CodeNotFound, 0), false, ErrInternal, apierr.CodeInternal, 500, nil},
		{"supernode: internal", supernode(apierr.CodeInternal, 0), false, ErrInternal, apierr.CodeInternal, 500, nil},
		// The supernode's own disk is not this daemon's: its local failures are internal here.
		{"supernode: local", supernode(apierr.CodeLocal, 0), false, ErrInternal, apierr.CodeInternal, 500, nil},
		{"supernode: disk_full", supernode(apierr.CodeDiskFull, 0), false, ErrInternal, apierr.CodeInternal, 500, nil},
		{"disk full while filling from the origin", diskFull, true, ErrDiskFull, apierr.CodeDiskFull, 507, syscall.ENOSPC},
		{"disk full anywhere", diskFull, false, ErrDiskFull, apierr.CodeDiskFull, 507, ErrLocal},
		{"disk quota exceeded", fmt.Errorf("%w: %w", piece.ErrIO, syscall.EDQUOT), false, ErrDiskFull, apierr.CodeDiskFull, 507, piece.ErrIO},
		{"index write failed", fmt.Errorf("record in index: %w: %w", piece.ErrIO, errors.New("bbolt: tx closed")), false, ErrLocal, apierr.CodeLocal, 500, piece.ErrIO},
		{"piece store closed", fmt.Errorf("task sha256:ab: %w", piece.ErrClosed), true, ErrLocal, apierr.CodeLocal, 500, piece.ErrClosed},
		{"bare errno", fmt.Errorf("mmap: %w", syscall.ENOMEM), false, ErrLocal, apierr.CodeLocal, 500, syscall.ENOMEM},
		{"unknown, from the origin", odd, true, ErrOriginUnreachable, apierr.CodeOriginUnreachable, 502, odd},
		{"unknown, anywhere", odd, false, ErrInternal, apierr.CodeInternal, 500, odd},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := classify(c.err)
			if c.origin {
				got = fromOrigin(c.err)
			}
			var e *Error
			if !errors.As(got, &e) || !errors.Is(got, c.kind) {
				t.Fatalf("classified as %T %v, want kind %v", got, got, c.kind)
			}
			if !errors.Is(got, c.err) {
				t.Errorf("the original error is no longer in the chain of %v", got)
			}
			if c.cause != nil && !errors.Is(got, c.cause) {
				t.Errorf("errors.Is(%v, %v) = false", got, c.cause)
			}
			status, body := APIError(got)
			if body.Code != c.code || status != c.status {
				t.Errorf("API answer %d %s, want %d %s", status, body.Code, c.status, c.code)
			}
			if classify(got) != got {
				t.Error("classifying a classified error changed it")
			}
		})
	}
}

func TestClassifyKeepsCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/", nil)
	_, err := http.DefaultClient.Do(req)
	for _, got := range []error{classify(err), fromOrigin(err)} {
		if got != err || !errors.Is(got, context.Canceled) {
			t.Errorf("a cancelled download became %v; want the cancellation itself", got)
		}
	}
}

func TestLocalErrorNamesItself(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		&fs.PathError{Op: "write", Path: "/data/x", Err: syscall.ENOSPC}: "disk full: write /data/x: no space left on device",
		&fs.PathError{Op: "write", Path: "/data/x", Err: syscall.EIO}:    "local failure: write /data/x: input/output error",
	} {
		if _, body := APIError(classify(err)); body.Message != want {
			t.Errorf("message %q, want %q", body.Message, want)
		}
	}
}
