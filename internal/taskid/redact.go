package taskid

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Redacted replaces what Redact hides.
const Redacted = "REDACTED"

// Redact returns rawURL fit to store, log or show: the value of every query parameter the filter
// removes from task IDs (signatures, credentials, expiry times) and the password of any user
// info become REDACTED, the fragment is dropped, the host is lower-cased and the parameters are
// sorted. Two URLs that differ only in those values redact to the same string, so the result is
// also what two requests are compared by. A string that does not parse as a URL is replaced
// whole.
func Redact(rawURL string, filter []string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if filtered(k, filter) {
				for i := range vs {
					vs[i] = Redacted
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// harmless are the request headers that say nothing about who sends them. Any other header
// may carry a credential (Authorization, Cookie, but also X-Api-Key, Private-Token and the like).
var harmless = []string{"Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Pragma", "User-Agent"}

// Credentialed reports whether a fetch of rawURL with header proves something about who makes
// it, so that what it fetches may be private: a header other than the few that cannot carry a
// credential (Authorization, Proxy-Authorization and Cookie above all), user info in the URL,
// or a signed query (a parameter the filter removes). Header names are compared
// case-insensitively, since a header decoded from JSON need not be in canonical form.
func Credentialed(rawURL string, header http.Header, filter []string) bool {
	for k, vs := range header {
		if len(vs) > 0 && !slices.ContainsFunc(harmless, func(h string) bool { return strings.EqualFold(h, k) }) {
			return true
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return true // nothing can be said of it: assume the worst
	}
	if u.User != nil {
		return true
	}
	for k := range u.Query() {
		if filtered(k, filter) {
			return true
		}
	}
	return false
}

// RedactError blanks the URL inside an HTTP client's error (*url.Error), which may be a
// redirect's target such as a pre-signed storage URL, with Redact; a nil filter means
// DefaultFilter. It returns err.
func RedactError(err error, filter []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if filter == nil {
			filter = DefaultFilter
		}
		ue.URL = Redact(ue.URL, filter)
	}
	return err
}
