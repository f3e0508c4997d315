package dfdaemon

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
)

// fakeOrigin answers as the origins the gate meets do, for content of 10 bytes:
//
//	/bearer   only with "Authorization: Bearer X", else 401 with a challenge
//	/signed   refuses HEAD (signed for GET); a GET with X-Amz-Signature=good gets byte 0
//	/nohead   405 to HEAD, the whole content to GET (it ignores Range)
//	/login    200 for anyone, with another length (a login page)
//	/gone     404
//	/broken   500
func fakeOrigin(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		const length = "10"
		switch r.URL.Path {
		case "/bearer":
			if r.Header.Get("Authorization") != "Bearer X" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="https://auth.example/token"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Length", length)
		case "/signed":
			if r.Method != http.MethodGet || r.URL.Query().Get("X-Amz-Signature") != "good" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			if r.Header.Get("Range") != "bytes=0-0" {
				t.Errorf("signed GET with Range %q, want bytes=0-0", r.Header.Get("Range"))
			}
			w.Header().Set("Content-Range", "bytes 0-0/"+length)
			w.Header().Set("Content-Length", "1")
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte{0})
		case "/nohead":
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Length", length)
			w.Write(make([]byte, 10))
		case "/login":
			w.Header().Set("Content-Length", "999")
		case "/gone":
			http.NotFound(w, r)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &asked
}

func testGate(policy netguard.Policy) *gate {
	m := &metrics{
		authorization: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a"}, []string{"result"}),
		direct:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"reason"}),
	}
	return newGate(policy.Client(), taskid.DefaultFilter, time.Minute, m, zap.NewNop())
}

// TestGateDecisions: what the gate answers for each kind of content, request and origin.
func TestGateDecisions(t *testing.T) {
	t.Parallel()
	origin, asked := fakeOrigin(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + closed.Addr().String()
	closed.Close()
	bearer := http.Header{"Authorization": {"Bearer X"}}
	private := func(u string) piece.Meta {
		return piece.Meta{ID: digest.FromString(u), ContentLength: 10, PieceSize: piece.MinSize, Access: piece.AccessPrivate,
			Origin: taskid.Redact(u, taskid.DefaultFilter)}
	}
	for _, tc := range []struct {
		name   string
		meta   piece.Meta
		req    Request
		ssrf   bool // through a gate whose SSRF policy refuses loopback, the default
		result string
		kind   error // nil: served
		status int   // the origin's status in the *Error
		asks   int64 // requests to the origin
	}{
		{"public content, anyone", piece.Meta{Access: piece.AccessPublic, Origin: origin.URL + "/bearer"}, Request{URL: dead + "/anything"}, false, gatePublic, nil, 0, 0},
		{"unknown access", piece.Meta{Origin: origin.URL + "/bearer", ContentLength: 10}, Request{URL: origin.URL + "/bearer", Header: bearer}, false, gateElsewhere, ErrNotShared, 0, 0},
		{"private, another origin", private(origin.URL + "/bearer"), Request{URL: origin.URL + "/other", Header: bearer}, false, gateElsewhere, ErrNotShared, 0, 0},
		{"private, another host", private(origin.URL + "/bearer"), Request{URL: dead + "/bearer", Header: bearer}, false, gateElsewhere, ErrNotShared, 0, 0},
		{"private, header as JSON decodes it", private(origin.URL + "/bearer"), Request{URL: origin.URL + "/bearer", Header: http.Header{"authorization": {"Bearer X"}}}, false, gateAllowed, nil, 0, 1},
		{"same credentials, canonical name: cached", private(origin.URL + "/bearer"), Request{URL: origin.URL + "/bearer", Header: bearer}, false, gateAllowed, nil, 0, 0},
		{"private, no credentials", private(origin.URL + "/bearer"), Request{URL: origin.URL + "/bearer"}, false, gateDenied, ErrOriginStatus, 401, 1},
		{"private, wrong credentials", private(origin.URL + "/bearer"), Request{URL: origin.URL + "/bearer", Header: http.Header{"Authorization": {"Bearer Y"}}}, false, gateDenied, ErrOriginStatus, 401, 1},
		{"signed, right signature (HEAD 403, GET)", private(origin.URL + "/signed?X-Amz-Signature=good"), Request{URL: origin.URL + "/signed?X-Amz-Signature=good"}, false, gateAllowed, nil, 0, 2},
		{"signed, wrong signature", private(origin.URL + "/signed?X-Amz-Signature=good"), Request{URL: origin.URL + "/signed?X-Amz-Signature=bad"}, false, gateDenied, ErrOriginStatus, 403, 2},
		{"signed, no signature", private(origin.URL + "/signed?X-Amz-Signature=good"), Request{URL: origin.URL + "/signed"}, false, gateElsewhere, ErrNotShared, 0, 0},
		{"HEAD not allowed, GET", private(origin.URL + "/nohead"), Request{URL: origin.URL + "/nohead", Header: bearer}, false, gateAllowed, nil, 0, 2},
		{"another length: other content", private(origin.URL + "/login"), Request{URL: origin.URL + "/login", Header: bearer}, false, gateElsewhere, ErrNotShared, 0, 1},
		{"not found", private(origin.URL + "/gone"), Request{URL: origin.URL + "/gone", Header: bearer}, false, gateDenied, ErrOriginStatus, 404, 1},
		{"origin fails: closed", private(origin.URL + "/broken"), Request{URL: origin.URL + "/broken", Header: bearer}, false, gateError, ErrOriginStatus, 500, 1},
		{"origin unreachable: closed", private(dead + "/x"), Request{URL: dead + "/x", Header: bearer}, false, gateError, ErrOriginUnreachable, 0, 0},
		{"origin not allowed (SSRF): closed", private(origin.URL + "/bearer"), Request{URL: origin.URL + "/bearer", Header: bearer}, true, gateError, ErrForbidden, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := shared
			if tc.ssrf {
				g = testGate(netguard.Policy{})
			}
			before := asked.Load()
			err := g.check(t.Context(), tc.meta, tc.req)
			var counted dto.Metric
			if err := g.metrics.authorization.WithLabelValues(tc.result).Write(&counted); err != nil || counted.GetCounter().GetValue() == 0 {
				t.Errorf("result %q not counted", tc.result)
			}
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			var e *Error
			if tc.status != 0 && (!errors.As(err, &e) || e.OriginStatus != tc.status) {
				t.Errorf("err = %#v, want origin status %d", err, tc.status)
			}
			if tc.status == 401 && e.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without the origin's challenge: %v", e.Header)
			}
			if got := asked.Load() - before; got != tc.asks {
				t.Errorf("origin asked %d times, want %d", got, tc.asks)
			}
		})
	}
}

// shared is the gate TestGateDecisions runs its cases through in order, so that a yes is
// cached from one case to the next.
var shared = testGate(netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})

// TestGateCacheExpires: a yes is reused within the TTL only.
func TestGateCacheExpires(t *testing.T) {
	t.Parallel()
	g := testGate(netguard.Policy{})
	now := time.Now()
	g.yes.Add("k", now.Add(time.Second))
	if !g.accepted("k", now) {
		t.Error("a fresh yes was not reused")
	}
	if g.accepted("k", now.Add(2*time.Second)) || g.yes.Contains("k") {
		t.Error("an expired yes was reused or kept")
	}
	if k1, k2 := g.key(piece.Meta{ID: "sha256:a"}, Request{URL: "u", Header: http.Header{"Authorization": {"A"}}}),
		g.key(piece.Meta{ID: "sha256:a"}, Request{URL: "u", Header: http.Header{"Authorization": {"B"}}}); k1 == k2 {
		t.Error("two credentials share a cache key")
	}
}
