package registryproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// The OCI distribution error codes the mirror answers with.
const (
	CodeBlobUnknown     = "BLOB_UNKNOWN"
	CodeManifestUnknown = "MANIFEST_UNKNOWN"
	CodeManifestInvalid = "MANIFEST_INVALID"
	CodeNameInvalid     = "NAME_INVALID"
	CodeNameUnknown     = "NAME_UNKNOWN"
	CodeDigestInvalid   = "DIGEST_INVALID"
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeDenied          = "DENIED"
	CodeUnsupported     = "UNSUPPORTED"
)

// StatusError is what Blobs.Fetch returns when the upstream refused: the P2P network's fetch,
// or the requester's own credentials at the authorization check.
type StatusError struct {
	Status int
	Msg    string
	// Header is the upstream's answer to the requester's credentials (its WWW-Authenticate),
	// non-nil when Status is that answer: the mirror relays both unchanged, and the client can
	// authenticate and retry. Nil when the network's fetch was refused: the mirror then asks
	// the upstream itself.
	Header http.Header
}

// ErrNotShared is what Blobs.Fetch returns for a blob the network holds as private content of
// another upstream or repository than the one the request names: the mirror streams it from
// the named upstream itself, which alone decides.
var ErrNotShared = errors.New("blob not shared with this upstream or repository")

func (e *StatusError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("upstream answered %d %s", e.Status, http.StatusText(e.Status))
}

// upstreamStatus returns the upstream's 4xx status behind err, or 0.
func upstreamStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 {
		return se.Status
	}
	return 0
}

type ociError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError answers with the OCI error body.
func writeError(w http.ResponseWriter, status int, code, msg string, detail any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	if status != http.StatusRequestedRangeNotSatisfiable {
		h.Del("Content-Range") // a 416 keeps its "bytes */size" (RFC 9110, 15.5.17)
	}
	h.Del("Docker-Content-Digest")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Errors []ociError `json:"errors"`
	}{[]ociError{{Code: code, Message: msg, Detail: detail}}})
}
