package httpx

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/pouch-p2p/pouch/internal/apierr"
)

// Admin guards the operator's views: task listing and deletion, preheat jobs, the status page.
// With a token configured they need it — as a bearer token, or as the password of HTTP Basic
// auth so that a browser can open the status page — compared in constant time. With none they
// answer only clients on loopback: an operator on the node itself, or behind `kubectl
// port-forward`, but nobody else on the network.
type Admin struct {
	Token string
}

// Allow reports whether r may use an admin view; when it may not, it has answered r with 401
// (a token is configured and r lacks it) or 403 (no token, and r is not from loopback).
func (a Admin) Allow(w http.ResponseWriter, r *http.Request) bool {
	if a.Token == "" {
		if fromLoopback(r) {
			return true
		}
		WriteError(w, http.StatusForbidden, apierr.Error{Code: apierr.CodeForbidden,
			Message: "admin views answer only loopback clients when no admin token is configured: set --admin-token (POUCH_ADMIN_TOKEN) to use them from elsewhere"})
		return false
	}
	if a.tokenOK(r) {
		return true
	}
	w.Header().Add("WWW-Authenticate", `Bearer realm="pouch"`)
	w.Header().Add("WWW-Authenticate", `Basic realm="pouch"`)
	WriteError(w, http.StatusUnauthorized, apierr.Error{Code: apierr.CodeUnauthorized,
		Message: "this admin view needs the admin token: Authorization: Bearer <token>"})
	return false
}

// Describe says which policy applies, for the line a daemon logs at start.
func (a Admin) Describe() string {
	if a.Token == "" {
		return "no admin token configured: admin views (task listing and deletion, preheat, status page) answer only loopback clients"
	}
	return "admin views (task listing and deletion, preheat, status page) need the admin token"
}

func (a Admin) tokenOK(r *http.Request) bool {
	got := ""
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		got = t
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) == 1
}

// fromLoopback says whether the connection comes from a loopback address. It looks at the TCP
// peer only, never at headers such as X-Forwarded-For, which any client can set.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
