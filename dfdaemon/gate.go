package dfdaemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
)

// The gate's outcomes: the "result" label of pouch_dfdaemon_authorization_total.
const (
	gatePublic    = "public"    // content fetched without credentials: served
	gateAllowed   = "allowed"   // private, and the origin accepted the requester's own headers
	gateDenied    = "denied"    // private, and the origin refused them (401, 403, 404, 410)
	gateElsewhere = "elsewhere" // private, and the requester names another origin: fetch directly
	gateError     = "error"     // private, and the origin gave no usable answer: refused
)

// The reasons a requester is sent to its origin directly: the "reason" label of
// pouch_dfdaemon_direct_fetches_total.
const (
	directOtherOrigin  = "other-origin"  // the redacted URLs differ (another host, path or repository)
	directOtherContent = "other-content" // same URL, but the origin answers this requester with another length
)

// gateTimeout bounds one authorization exchange with an origin.
const gateTimeout = 30 * time.Second

// gateEntries bounds the cache of the origins' yeses.
const gateEntries = 4096

// gate decides whether a client request may read a task's content from this daemon's store
// and the P2P network. It is the daemon's one authorization check: dfget's local API and the
// registry mirror both reach it through Daemon.Download.
type gate struct {
	client  *http.Client // the SSRF-guarded origin client
	filter  []string
	metrics *metrics
	log     *zap.Logger
	ttl     time.Duration
	// yes maps the hash of (task, URL, headers) the origin accepted to when that yes expires.
	// A plain bounded LRU with expiry checked on lookup: golang-lru's expirable cache keeps a
	// goroutine that never ends, one per daemon, which a closed daemon must not leave behind.
	yes *lru.Cache[string, time.Time]
}

func newGate(client *http.Client, filter []string, ttl time.Duration, m *metrics, log *zap.Logger) *gate {
	yes, _ := lru.New[string, time.Time](gateEntries) // fails only for a size <= 0
	return &gate{client: client, filter: filter, metrics: m, log: log, ttl: ttl, yes: yes}
}

// accepted says whether the origin said yes to key within the TTL.
func (g *gate) accepted(key string, now time.Time) bool {
	until, ok := g.yes.Get(key)
	if ok && now.After(until) {
		g.yes.Remove(key)
		return false
	}
	return ok
}

// check lets req read the content meta describes, or says why not:
//
//   - public content (its fetch carried no credentials): yes, by its digest or URL alone.
//   - private content whose origin is not the one req names (their redacted URLs differ), or
//     content of unknown access (stored before access was recorded; no origin is known): an
//     *Error of kind ErrNotShared; the caller fetches what req names directly, without the
//     store or the network.
//   - private content of the origin req names: the origin must accept req's own headers, a
//     HEAD answered 2xx, or, when HEAD gets 403 or 405 (pre-signed URLs are signed for one
//     method), a GET of bytes 0-0 answered 2xx. The yes is cached per task, URL and headers
//     for the configured AuthTTL. A yes that reports another length than the task's is an
//     answer about other content (a login page): ErrNotShared as well.
//   - a 401, 403, 404 or 410: an *Error of kind ErrOriginStatus with that status and the
//     origin's WWW-Authenticate in Header, so the client can authenticate and retry.
//   - any other status, or no answer at all: refused (ErrOriginStatus, ErrOriginUnreachable or
//     ErrForbidden for an address the SSRF policy refuses); the content is not served.
func (g *gate) check(ctx context.Context, meta piece.Meta, req Request) error {
	result, err := g.decide(ctx, meta, req)
	g.metrics.authorization.WithLabelValues(result).Inc()
	return err
}

func (g *gate) decide(ctx context.Context, meta piece.Meta, req Request) (string, error) {
	if meta.Public() {
		return gatePublic, nil
	}
	named := taskid.Redact(req.URL, g.filter)
	if meta.Access != piece.AccessPrivate || meta.Origin == "" || named != meta.Origin {
		return gateElsewhere, g.elsewhere(meta, named, directOtherOrigin)
	}
	key := g.key(meta, req)
	if g.accepted(key, time.Now()) {
		return gateAllowed, nil
	}
	ctx, cancel := context.WithTimeout(ctx, gateTimeout)
	defer cancel()
	a, err := g.ask(ctx, req, meta.ContentLength)
	switch {
	case err != nil:
		return gateError, fromOrigin(taskid.RedactError(err, g.filter))
	case a.status/100 == 2 && a.length >= 0 && a.length != meta.ContentLength:
		return gateElsewhere, g.elsewhere(meta, named, directOtherContent)
	case a.status/100 == 2:
		g.yes.Add(key, time.Now().Add(g.ttl))
		return gateAllowed, nil
	}
	e := &Error{Kind: ErrOriginStatus, OriginStatus: a.status, Header: http.Header{},
		Msg: fmt.Sprintf("origin answered %d %s for %s", a.status, http.StatusText(a.status), named)}
	if len(a.challenge) > 0 {
		e.Header[http.CanonicalHeaderKey("WWW-Authenticate")] = a.challenge
	}
	switch a.status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		g.log.Info("origin refused a requester of private content", zap.String("task", meta.ID.String()), zap.String("url", named), zap.Int("status", a.status))
		return gateDenied, e
	}
	e.Header = nil
	return gateError, e
}

// elsewhere is the answer for a requester that must fetch from its origin directly.
func (g *gate) elsewhere(meta piece.Meta, named, reason string) error {
	g.metrics.direct.WithLabelValues(reason).Inc()
	g.log.Info("private content requested from another origin: the requester fetches it directly",
		zap.String("task", meta.ID.String()), zap.String("url", named), zap.String("origin", meta.Origin), zap.String("reason", reason))
	// The message reaches the requester: it does not name the task's origin.
	return &Error{Kind: ErrNotShared, Msg: fmt.Sprintf("%s: not shared with requests for %s", ErrNotShared, named)}
}

// key identifies a requester's authorization for a task without keeping its credentials: the
// SHA-256 of the task, the full URL (a signature is a credential) and every header.
func (g *gate) key(meta piece.Meta, req Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", meta.ID, req.URL)
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	for _, k := range names {
		fmt.Fprintf(h, "%s: %q\n", strings.ToLower(k), req.Header[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// answer is what an origin said to a requester's headers.
type answer struct {
	status    int
	length    int64    // the content length it reported, -1 when it did not say
	challenge []string // WWW-Authenticate
}

// ask sends req's headers to its origin: a HEAD, then a one-byte GET when HEAD is refused with
// 403 or 405 (a URL pre-signed for GET refuses HEAD).
func (g *gate) ask(ctx context.Context, req Request, length int64) (answer, error) {
	a, err := g.send(ctx, http.MethodHead, req, length)
	if err != nil || (a.status != http.StatusForbidden && a.status != http.StatusMethodNotAllowed) {
		return a, err
	}
	return g.send(ctx, http.MethodGet, req, length)
}

func (g *gate) send(ctx context.Context, method string, req Request, length int64) (answer, error) {
	hr, err := http.NewRequestWithContext(ctx, method, req.URL, nil)
	if err != nil {
		return answer{}, &Error{Kind: ErrBadRequest, Msg: "bad URL " + taskid.Redact(req.URL, g.filter)}
	}
	for k, vs := range req.Header {
		if strings.EqualFold(k, "Range") {
			continue
		}
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	if method == http.MethodGet && length > 0 {
		hr.Header.Set("Range", httprange.Format(0, 0))
	}
	resp, err := g.client.Do(hr)
	if err != nil {
		return answer{}, err
	}
	// Not read: a one-byte body, or the whole content from an origin that ignores Range.
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, length: resp.ContentLength, challenge: resp.Header.Values("WWW-Authenticate")}
	if resp.StatusCode == http.StatusPartialContent {
		a.length = -1
		if cr, err := httprange.ParseContentRange(resp.Header.Get("Content-Range")); err == nil && !cr.Unsatisfied && cr.Total >= 0 {
			a.length = cr.Total
		}
	}
	return a, nil
}
