package dfdaemon

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
)

// The failures a download reports, wrapped with the URL or digest that failed.
var (
	ErrBadRequest        = errors.New("bad request")
	ErrOriginStatus      = errors.New("origin refused")
	ErrOriginUnreachable = errors.New("origin unreachable")
	ErrDigestMismatch    = errors.New("digest mismatch")
	ErrForbidden         = errors.New("destination not allowed")
)

// Error carries the origin's status along with the sentinel.
type Error struct {
	Kind         error
	OriginStatus int
	Msg          string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// APIError turns a download failure into the local API's status and error body.
func APIError(err error) (int, snapi.Error) {
	var e *Error
	body := snapi.Error{Message: err.Error()}
	if errors.As(err, &e) {
		body.OriginStatus = e.OriginStatus
	}
	switch {
	case errors.Is(err, ErrBadRequest):
		body.Code = snapi.CodeBadRequest
		return http.StatusBadRequest, body
	case errors.Is(err, ErrForbidden):
		body.Code = snapi.CodeForbidden
		return http.StatusForbidden, body
	case errors.Is(err, ErrOriginStatus):
		body.Code = snapi.CodeOriginStatus
		if body.OriginStatus == http.StatusNotFound || body.OriginStatus == http.StatusGone {
			return http.StatusNotFound, body
		}
		if body.OriginStatus == http.StatusUnauthorized || body.OriginStatus == http.StatusForbidden {
			return body.OriginStatus, body
		}
		return http.StatusBadGateway, body
	case errors.Is(err, ErrDigestMismatch):
		body.Code = CodeDigestMismatch
		return http.StatusBadGateway, body
	case errors.Is(err, ErrOriginUnreachable):
		body.Code = snapi.CodeOriginUnreachable
		return http.StatusBadGateway, body
	}
	body.Code = snapi.CodeInternal
	return http.StatusInternalServerError, body
}

// CodeDigestMismatch is the API code for content that does not match the requested digest.
const CodeDigestMismatch = snapi.CodeDigestMismatch

// classify maps origin and supernode failures onto the sentinels.
func classify(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var se *source.StatusError
	if errors.As(err, &se) {
		return &Error{Kind: ErrOriginStatus, OriginStatus: se.Status, Msg: err.Error()}
	}
	if errors.Is(err, netguard.ErrForbidden) {
		return &Error{Kind: ErrForbidden, Msg: err.Error()}
	}
	var sn *snapi.StatusError
	if errors.As(err, &sn) {
		switch sn.Err.Code {
		case snapi.CodeOriginStatus:
			return &Error{Kind: ErrOriginStatus, OriginStatus: sn.Err.OriginStatus, Msg: sn.Err.Message}
		case snapi.CodeOriginUnreachable:
			return &Error{Kind: ErrOriginUnreachable, Msg: sn.Err.Message}
		case snapi.CodeForbidden:
			return &Error{Kind: ErrForbidden, Msg: sn.Err.Message}
		case snapi.CodeBadRequest:
			return &Error{Kind: ErrBadRequest, Msg: sn.Err.Message}
		case snapi.CodeDigestMismatch:
			return &Error{Kind: ErrDigestMismatch, Msg: sn.Err.Message}
		}
	}
	return &Error{Kind: ErrOriginUnreachable, Msg: fmt.Sprintf("download failed: %v", err)}
}
