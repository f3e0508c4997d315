// Package reqid carries a request ID from a client through the dfdaemon to the supernode, so
// that every log line of one download can be found by it: the X-Request-ID header, checked,
// or a new ID when the client sent none.
package reqid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
)

// Header is the HTTP header that carries the ID, both ways.
const Header = "X-Request-ID"

// MaxLen bounds a client's ID: it goes into every log line of the download.
const MaxLen = 128

// New makes an ID: 16 random bytes in hex.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Check reports an ID that is empty, longer than MaxLen, or holds anything but letters,
// digits and - _ . : (safe in a log line, a header and a file name).
func Check(id string) error {
	if id == "" || len(id) > MaxLen {
		return fmt.Errorf("%s must be 1 to %d characters", Header, MaxLen)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
		default:
			return fmt.Errorf("%s holds %q: only letters, digits and - _ . : are allowed", Header, r)
		}
	}
	return nil
}

// FromRequest is the request's ID: its header when it sent a valid one, a new one when it sent
// none, and an error for a bad one.
func FromRequest(r *http.Request) (string, error) {
	id := r.Header.Get(Header)
	if id == "" {
		return New(), nil
	}
	return id, Check(id)
}

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From is the ID ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// Forward sets the header of an outgoing request to the ID its context carries, if any.
func Forward(req *http.Request) {
	if id := From(req.Context()); id != "" {
		req.Header.Set(Header, id)
	}
}
