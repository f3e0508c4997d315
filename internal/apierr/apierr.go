// Package apierr is the error vocabulary of Pouch's JSON APIs, the supernode's (internal/snapi)
// and the dfdaemon's local one (internal/dfapi): the body of every non-2xx answer, its codes,
// and reading that body back on the client side. A code says what went wrong, so that a caller
// acts on it without parsing messages. It imports nothing of Pouch; which HTTP status goes with
// which code stays with each API, since they differ (the supernode answers 502 for an origin's
// 404, the dfdaemon 404).
package apierr

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// Code is what went wrong.
type Code string

// The codes both APIs answer with.
const (
	CodeBadRequest        Code = "bad_request"
	CodeNotFound          Code = "not_found"          // unknown task or peer: register again
	CodeOriginStatus      Code = "origin_status"      // the origin answered with an error status
	CodeOriginUnreachable Code = "origin_unreachable" // the origin could not be reached or broke off
	CodeForbidden         Code = "forbidden"          // the destination is not allowed (SSRF policy)
	CodeUnauthorized      Code = "unauthorized"
	CodeDigestMismatch    Code = "digest_mismatch" // the content does not match the requested digest
	CodeLocal             Code = "local"           // the answering daemon failed locally (store or file error)
	CodeDiskFull          Code = "disk_full"       // the answering daemon's disk is full: a local failure too
	CodeInternal          Code = "internal"
)

// Error is the body of every non-2xx answer. A client gets it back as an error (*Error).
type Error struct {
	Message      string `json:"error"`
	Code         Code   `json:"code"`
	OriginStatus int    `json:"originStatus,omitempty"` // the origin's HTTP status when it refused
}

func (e *Error) Error() string { return e.Message }

// maxBody bounds the error body a client reads.
const maxBody = 1 << 20

// Read decodes the error body of a failed answer. ok is false when the body is not one of ours
// (no code: a proxy, a server still starting); the message is then the body's text, or the
// status text when the body is empty.
func Read(resp *http.Response) (e Error, ok bool) {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if json.Unmarshal(data, &e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(data))
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e, e.Code != ""
}
