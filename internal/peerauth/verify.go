package peerauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/httpx"
)

// VerifierConfig configures the supernode's checks; the zero value of a field is its default.
type VerifierConfig struct {
	Secret        string        // the cluster secret; empty: an open cluster (signatures only)
	Window        time.Duration // how far a call's date may be from now, either way
	ReplayEntries int           // nonces remembered at most
	Now           func() time.Time
}

// Verifier checks signed calls on the supernode. It is safe for concurrent use.
type Verifier struct {
	member *membership
	window time.Duration
	now    func() time.Time

	entries int
	once    sync.Once
	mu      sync.Mutex // makes "seen?" and "remember" one step
	seen    *expirable.LRU[[16]byte, int64]
	// floor is the newest date among nonces the cache had to drop while they could still be
	// replayed (it was full): calls dated at or before it are refused, so a flood that fills
	// the cache narrows the accepted window instead of letting a replay through.
	floor atomic.Int64
}

// NewVerifier returns the supernode's verifier.
func NewVerifier(cfg VerifierConfig) *Verifier {
	v := &Verifier{member: newMembership(cfg.Secret), window: cfg.Window, now: cfg.Now, entries: cfg.ReplayEntries}
	if v.window <= 0 {
		v.window = DefaultWindow
	}
	if v.entries <= 0 {
		v.entries = DefaultReplayEntries
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.floor.Store(-1 << 63)
	return v
}

// Open says whether the cluster runs without a secret: anyone who can reach the API may join.
func (v *Verifier) Open() bool { return v.member == nil }

// replayCache is made at the first verified call, so that a supernode that never served a peer
// starts none of its goroutine (expirable.LRU keeps one for the life of the process, dropping
// expired entries). A nonce is kept twice the window: a call is accepted up to a window after
// its date, which is at most a window after its arrival.
func (v *Verifier) replayCache() *expirable.LRU[[16]byte, int64] {
	v.once.Do(func() {
		v.seen = expirable.NewLRU(v.entries, func(_ [16]byte, date int64) {
			for f := v.floor.Load(); date > f && !v.floor.CompareAndSwap(f, date); f = v.floor.Load() {
			}
		}, 2*v.window)
	})
	return v.seen
}

// Verify checks a call's authentication headers against its method, request URI and body, and
// returns the peer that signed it. The checks, cheapest first: the headers' form; the
// membership MAC (with a secret, in constant time); the date within the window; the signature
// against the key embedded in the peer ID; the nonce not seen before.
func (v *Verifier) Verify(method, uri string, h http.Header, body []byte) (string, error) {
	pid, date, nonce, sig := h.Get(HeaderPeer), h.Get(HeaderDate), h.Get(HeaderNonce), h.Get(HeaderSignature)
	for _, f := range [][2]string{{HeaderPeer, pid}, {HeaderDate, date}, {HeaderNonce, nonce}, {HeaderSignature, sig}} {
		if f[1] == "" {
			return "", fmt.Errorf("%w: %s is missing; a peer signs every call to the supernode with its libp2p key", ErrUnsigned, f[0])
		}
	}
	when, err := strconv.ParseInt(date, 10, 64)
	if err != nil || strconv.FormatInt(when, 10) != date {
		return "", fmt.Errorf("%w: %s must be unix seconds", ErrMalformed, HeaderDate)
	}
	var raw [16]byte
	if len(nonce) != 2*len(raw) || !isLowerHex(nonce) {
		return "", fmt.Errorf("%w: %s must be 32 lowercase hex digits", ErrMalformed, HeaderNonce)
	}
	id, err := peer.Decode(pid)
	if err != nil || id.String() != pid {
		return "", fmt.Errorf("%w: %s is not a peer ID", ErrMalformed, HeaderPeer)
	}
	key, err := id.ExtractPublicKey()
	if err != nil || key.Type() != crypto.Ed25519 {
		return "", fmt.Errorf("%w: peer %s does not embed an Ed25519 key in its ID", ErrMalformed, pid)
	}
	signature, ok := decodeBase64(sig)
	if !ok {
		return "", fmt.Errorf("%w: %s must be base64", ErrMalformed, HeaderSignature)
	}
	msg := canonical(method, uri, date, nonce, pid, body)

	if v.member != nil {
		mac := h.Get(HeaderMember)
		if mac == "" {
			return "", fmt.Errorf("%w: this supernode requires the cluster secret (--secret or POUCH_SECRET on the peer)", ErrNoMembership)
		}
		if !v.member.check(mac, msg) {
			return "", fmt.Errorf("%w: the caller does not hold this cluster's secret", ErrBadMembership)
		}
	}
	now := v.now()
	if skew := now.Sub(time.Unix(when, 0)); skew > v.window || skew < -v.window {
		return "", fmt.Errorf("%w: signed at %s, %v from the supernode's clock, allowed ±%v (check the clocks, e.g. NTP)",
			ErrClock, time.Unix(when, 0).UTC().Format(time.RFC3339), skew.Round(time.Second), v.window)
	}
	if ok, err := key.Verify(msg, signature); err != nil || !ok {
		return "", fmt.Errorf("%w: against the key of peer %s", ErrBadSignature, pid)
	}
	if when <= v.floor.Load() {
		return "", fmt.Errorf("%w: dated at or before the oldest call the supernode no longer remembers (its replay cache is full); sign it anew", ErrReplay)
	}
	seenKey := replayKey(pid, nonce)
	cache := v.replayCache()
	v.mu.Lock()
	defer v.mu.Unlock()
	if cache.Contains(seenKey) {
		return "", fmt.Errorf("%w: nonce %s of peer %s was used before", ErrReplay, nonce, pid)
	}
	cache.Add(seenKey, when)
	return pid, nil
}

func replayKey(pid, nonce string) [16]byte {
	sum := sha256.Sum256([]byte(pid + "\n" + nonce))
	return [16]byte(sum[:16])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

type callerKey struct{}

// Caller is the peer that signed the call being served (set by Middleware); "" outside it.
func Caller(ctx context.Context) string {
	id, _ := ctx.Value(callerKey{}).(string)
	return id
}

// Middleware admits only verified calls to next: it reads the body (at most limit bytes),
// verifies the call, and hands next the same body and a context naming the caller (Caller).
// A refused call gets 401 with the apierr code unauthorized and a message naming what failed.
// With a secret, every answer — refusals too — carries the membership MAC bound to the call's
// nonce, so next's answer is buffered until it returns.
func (v *Verifier) Middleware(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v.member != nil {
			aw := &answerWriter{w: w}
			defer aw.finish(v.member, r.Header.Get(HeaderNonce))
			w = aw
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, apierr.Error{Code: apierr.CodeBadRequest, Message: "read request body: " + err.Error()})
			return
		}
		if int64(len(body)) > limit {
			httpx.WriteError(w, http.StatusRequestEntityTooLarge, apierr.Error{Code: apierr.CodeBadRequest, Message: fmt.Sprintf("request body larger than %d bytes", limit)})
			return
		}
		caller, err := v.Verify(r.Method, r.URL.RequestURI(), r.Header, body)
		if err != nil {
			httpx.WriteError(w, http.StatusUnauthorized, apierr.Error{Code: apierr.CodeUnauthorized, Message: err.Error()})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, caller))
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// answerWriter holds an answer until its MAC is known.
type answerWriter struct {
	w      http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (a *answerWriter) Header() http.Header { return a.w.Header() }

func (a *answerWriter) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answerWriter) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.buf.Write(p)
}

func (a *answerWriter) finish(m *membership, nonce string) {
	a.WriteHeader(http.StatusOK)
	a.w.Header().Set(HeaderMember, b64.EncodeToString(m.sum(answerString(nonce, a.status, a.buf.Bytes()))))
	a.w.WriteHeader(a.status)
	a.w.Write(a.buf.Bytes())
}
