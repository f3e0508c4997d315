package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/piece"
)

// The failures a download reports, wrapped with the URL or digest that failed.
var (
	ErrBadRequest        = errors.New("bad request")
	ErrOriginStatus      = errors.New("origin refused")
	ErrOriginUnreachable = errors.New("origin unreachable")
	ErrDigestMismatch    = errors.New("digest mismatch")
	ErrForbidden         = errors.New("destination not allowed")
	// ErrNotShared is a request for private content that names another origin than the one
	// the content came from: it is not served from the store or the P2P network, and the
	// caller fetches what the request names directly.
	ErrNotShared = errors.New("private content of another origin")
	// ErrLocal is this daemon's own storage failing (disk full, I/O error, the piece store):
	// retrying elsewhere will not help, and neither the origin nor the parents are to blame.
	ErrLocal = errors.New("local failure")
	// ErrDiskFull is the ErrLocal of a full disk (ENOSPC, or a disk quota: EDQUOT): the
	// operator frees space or moves the data dir; errors.Is(err, ErrLocal) holds too.
	ErrDiskFull = fmt.Errorf("disk full: %w", ErrLocal)
	// ErrInternal is any other failure.
	ErrInternal = errors.New("internal error")
)

// Error is a download failure: its kind (one of the sentinels above), the origin's status
// when it refused, and the error it came from. errors.Is and errors.As see both the kind and
// the cause.
type Error struct {
	Kind         error
	OriginStatus int
	// Header holds the origin's WWW-Authenticate when it refused the requester's own
	// credentials at the gate (non-nil then, even when empty), for the registry mirror to relay.
	Header http.Header
	Msg    string
	Err    error // the cause, when there is one
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// kinds is the one table of download failures: each kind's code in the local API's error body,
// the status the local API answers with, and whether a supernode answering with that code
// reports the seed's failure, which is then this download's too (the other codes, not_found,
// local, internal..., are the supernode's own trouble: ErrInternal here). ErrDiskFull stands
// before ErrLocal, which it is too. A kind that is not here (ErrNotShared) is answered as
// internal: it never reaches a client.
var kinds = []struct {
	kind   error
	code   apierr.Code
	status int
	seed   bool
}{
	{ErrBadRequest, apierr.CodeBadRequest, http.StatusBadRequest, true},
	{ErrForbidden, apierr.CodeForbidden, http.StatusForbidden, true},
	{ErrOriginStatus, apierr.CodeOriginStatus, http.StatusBadGateway, true}, // see originStatus
	{ErrDigestMismatch, apierr.CodeDigestMismatch, http.StatusBadGateway, true},
	{ErrOriginUnreachable, apierr.CodeOriginUnreachable, http.StatusBadGateway, true},
	{ErrDiskFull, apierr.CodeDiskFull, http.StatusInsufficientStorage, false},
	{ErrLocal, apierr.CodeLocal, http.StatusInternalServerError, false},
	{ErrInternal, apierr.CodeInternal, http.StatusInternalServerError, false},
}

// APIError turns a download failure into the local API's status and error body.
func APIError(err error) (int, apierr.Error) {
	body := apierr.Error{Message: err.Error(), Code: apierr.CodeInternal}
	var e *Error
	if errors.As(err, &e) {
		body.OriginStatus = e.OriginStatus
	}
	for _, k := range kinds {
		if errors.Is(err, k.kind) {
			body.Code = k.code
			if k.kind == ErrOriginStatus {
				return originStatus(body.OriginStatus), body
			}
			return k.status, body
		}
	}
	return http.StatusInternalServerError, body
}

// originStatus is the local API's status for an origin's refusal: the origin's own for a
// missing object or refused credentials (a client acts on those: it logs in, or gives up),
// 502 for anything else.
func originStatus(origin int) int {
	switch origin {
	case http.StatusNotFound, http.StatusGone:
		return http.StatusNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return origin
	}
	return http.StatusBadGateway
}

// seedKind is the kind of a supernode's error answer: the seed's failure when kinds says so,
// else ErrInternal.
func seedKind(code apierr.Code) error {
	for _, k := range kinds {
		if k.code == code && k.seed {
			return k.kind
		}
	}
	return ErrInternal
}

// classify maps a failure onto the sentinels; one it does not recognise is ErrInternal. A
// cancellation is returned as it is: the download was stopped, nobody failed.
func classify(err error) error { return classifyOr(err, ErrInternal) }

// fromOrigin classifies a failure met while fetching from the origin: what classify does not
// recognise there (a body cut short, a length that changed, content that no longer hashes to
// the seed's digests) is the origin's doing.
func fromOrigin(err error) error {
	if err == nil {
		return nil
	}
	return classifyOr(err, ErrOriginUnreachable)
}

func classifyOr(err, otherwise error) error {
	var e *Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) {
		return err
	}
	var se *source.StatusError
	if errors.As(err, &se) {
		return &Error{Kind: ErrOriginStatus, OriginStatus: se.Status, Msg: err.Error(), Err: err}
	}
	if errors.Is(err, netguard.ErrForbidden) {
		return &Error{Kind: ErrForbidden, Msg: err.Error(), Err: err}
	}
	var sn *snapi.StatusError
	if errors.As(err, &sn) {
		// The supernode's answer: the seed's failure, which is this download's too, or the
		// supernode's own trouble.
		kind := seedKind(sn.Err.Code)
		return &Error{Kind: kind, OriginStatus: sn.Err.OriginStatus, Msg: sn.Err.Message, Err: err}
	}
	if isDiskFull(err) {
		return &Error{Kind: ErrDiskFull, Msg: "disk full: " + err.Error(), Err: err}
	}
	if isLocal(err) {
		return &Error{Kind: ErrLocal, Msg: "local failure: " + err.Error(), Err: err}
	}
	if isNetwork(err) {
		otherwise = ErrOriginUnreachable
	}
	return &Error{Kind: otherwise, Msg: "download failed: " + err.Error(), Err: err}
}

// isLocal says whether err is this daemon's storage failing: the piece store, or a file
// operation (disk full, read-only file system, I/O error).
func isLocal(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		return true
	}
	for _, s := range []error{piece.ErrIO, piece.ErrClosed, piece.ErrNotFound, piece.ErrBadMeta, piece.ErrMetaConflict, piece.ErrOutOfRange, piece.ErrBadBitfield} {
		if errors.Is(err, s) {
			return true
		}
	}
	// A bare errno is a system call of ours failing; the network's (connection refused) come
	// wrapped in a network error, which belongs to the origin.
	var errno syscall.Errno
	return !isNetwork(err) && errors.As(err, &errno)
}

// isDiskFull says whether err is this daemon's disk (or its quota) being full. A full disk on
// the other end of a connection comes as the origin's or a parent's error, never as an errno.
func isDiskFull(err error) bool {
	return !isNetwork(err) && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT))
}

// isNetwork says whether err came from the network: a dial, a read or write on a connection, a
// name lookup, an HTTP exchange. Not any net.Error: a syscall.Errno is one too.
func isNetwork(err error) bool {
	var op *net.OpError
	var ue *url.Error
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &ue) || errors.As(err, &dns)
}
