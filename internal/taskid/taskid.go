// Package taskid names a download. An OCI blob's task is its digest, so the same layer from any
// repository or registry is one task. A URL's task is the SHA-256 of the URL with volatile query
// parameters (signatures, expiry) removed, plus an optional tag; a known content digest wins over
// both. The same filter says what a URL must not show: Redact blanks those parameters' values
// wherever a URL is stored, logged or shown, and Credentialed tells a fetch that proved who made
// it (credentials, a signed query) from an anonymous one. It owns naming only, and does no I/O.
package taskid

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// DefaultFilter lists query parameters that change between two requests for the same content:
// pre-signed URL signatures and expiry times of the common object stores.
var DefaultFilter = []string{
	"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature",
	"X-Amz-SignedHeaders", "X-Amz-Security-Token", "Expires", "Signature", "AWSAccessKeyId",
	"OSSAccessKeyId", "GoogleAccessId", "X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date",
	"X-Goog-Expires", "X-Goog-Signature", "X-Goog-SignedHeaders", "sig", "se", "st", "sp", "sv", "sr",
}

// For returns the task ID of a download. With a content digest the ID is that digest (it must be
// a valid sha256 digest); otherwise it is the sha256 of the filtered URL and the tag.
func For(rawURL, tag string, content digest.Digest, filter []string) (digest.Digest, error) {
	if content != "" {
		if err := content.Validate(); err != nil {
			return "", fmt.Errorf("taskid: bad digest %q: %w", content, err)
		}
		if content.Algorithm() != digest.SHA256 {
			return "", fmt.Errorf("taskid: digest %q: only sha256 is supported", content)
		}
		return content, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("taskid: %q is not an absolute URL", rawURL)
	}
	q := u.Query()
	for k := range q {
		if filtered(k, filter) {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode() // Encode sorts keys, so parameter order does not split a task.
	u.Fragment = ""
	return digest.FromString(u.String() + "\x00" + tag), nil
}

// filtered says whether the query parameter k is one the filter removes (case-insensitively).
func filtered(k string, filter []string) bool {
	return slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, k) })
}
