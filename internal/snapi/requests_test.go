package snapi

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	digest "github.com/opencontainers/go-digest"
)

// A real peer ID (Ed25519, the key embedded), and a task ID.
var (
	testPeerID = func() string {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			panic(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		return id.String()
	}()
	testTask = digest.FromString("task")
)

func TestDecodeRefusesWhatIsInvalid(t *testing.T) {
	t.Parallel()
	p := `"peer":{"id":"` + testPeerID + `","addrs":["/ip4/10.0.0.1/tcp/4001"]}`
	task := `"task":"` + testTask.String() + `"`
	cases := []struct {
		name string
		v    PeerRequest
		body string
		ok   bool
	}{
		{"register", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `}`, true},
		{"register with digest", &RegisterRequest{}, `{"task":{"url":"https://h/x","digest":"` + testTask.String() + `"},` + p + `}`, true},
		{"register, not json", &RegisterRequest{}, `{"task":`, false},
		{"register, unknown field", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"evil":1}`, false},
		{"register, two objects", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `}{}`, false},
		{"register, file url", &RegisterRequest{}, `{"task":{"url":"file:///etc/passwd"},` + p + `}`, false},
		{"register, relative url", &RegisterRequest{}, `{"task":{"url":"/x"},` + p + `}`, false},
		{"register, md5 digest", &RegisterRequest{}, `{"task":{"url":"https://h/x","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"},` + p + `}`, false},
		{"register, no addrs", &RegisterRequest{}, `{"task":{"url":"https://h/x"},"peer":{"id":"` + testPeerID + `"}}`, false},
		{"register, bad addr", &RegisterRequest{}, `{"task":{"url":"https://h/x"},"peer":{"id":"` + testPeerID + `","addrs":["10.0.0.1:4001"]}}`, false},
		{"register, not a peer ID", &RegisterRequest{}, `{"task":{"url":"https://h/x"},"peer":{"id":"seed","addrs":["/ip4/10.0.0.1/tcp/4001"]}}`, false},
		{"register as a seed", &RegisterRequest{}, `{"task":{"url":"https://h/x"},"peer":{"id":"` + testPeerID + `","addrs":["/ip4/10.0.0.1/tcp/4001"],"seed":true}}`, false},
		{"register, negative have", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"have":-1}`, false},
		{"register, negative rate", &RegisterRequest{}, `{"task":{"url":"https://h/x"},"peer":{"id":"` + testPeerID + `","addrs":["/ip4/10.0.0.1/tcp/4001"],"uploadRate":-5}}`, false},
		{"register, url of 17 KiB", &RegisterRequest{}, `{"task":{"url":"https://h/` + strings.Repeat("x", 17<<10) + `"},` + p + `}`, false},
		{"register, 65 KiB of headers", &RegisterRequest{}, `{"task":{"url":"https://h/x","header":{"Cookie":["` + strings.Repeat("c", 65<<10) + `"]}},` + p + `}`, false},
		{"register holding", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"have":1,"holding":{"contentLength":3145728,"pieceSize":1048576,"bitfield":"QA==","digests":["` + testTask.String() + `"],"access":"public"}}`, true},
		{"register holding, digests and bits disagree", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"holding":{"contentLength":3145728,"pieceSize":1048576,"bitfield":"YA==","digests":["` + testTask.String() + `"]}}`, false},
		{"register holding, md5 piece digest", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"holding":{"contentLength":3145728,"pieceSize":1048576,"bitfield":"QA==","digests":["md5:d41d8cd98f00b204e9800998ecf8427e"]}}`, false},
		{"register holding, unknown access", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"holding":{"contentLength":3145728,"pieceSize":1048576,"bitfield":"","digests":[],"access":"everyone"}}`, false},
		{"register holding, no piece size", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"holding":{"contentLength":3145728,"pieceSize":0,"bitfield":"","digests":[]}}`, false},
		{"register wanting a span", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"want":{"start":0,"end":1048575}}`, true},
		{"register wanting a reversed span", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"want":{"start":10,"end":9}}`, false},
		{"register wanting a negative start", &RegisterRequest{}, `{"task":{"url":"https://h/x"},` + p + `,"want":{"start":-1,"end":9}}`, false},
		{"sync, negative ahead", &SyncRequest{}, `{` + task + `,"peer":"` + testPeerID + `","ahead":-1}`, false},
		{"sync", &SyncRequest{}, `{` + task + `,"peer":"` + testPeerID + `","have":3,"failures":[{"parent":"x","reason":"timeout"}]}`, true},
		{"sync, bad task", &SyncRequest{}, `{"task":"sha256:../../etc","peer":"` + testPeerID + `"}`, false},
		{"sync, negative wait", &SyncRequest{}, `{` + task + `,"peer":"` + testPeerID + `","waitMs":-1}`, false},
		{"sync, failure without parent", &SyncRequest{}, `{` + task + `,"peer":"` + testPeerID + `","failures":[{"reason":"corrupt"}]}`, false},
		{"sync, negative transfer", &SyncRequest{}, `{` + task + `,"peer":"` + testPeerID + `","transfers":[{"parent":"x","bytes":-1}]}`, false},
		{"leave", &LeaveRequest{}, `{` + task + `,"peer":"` + testPeerID + `"}`, true},
		{"leave, no peer", &LeaveRequest{}, `{` + task + `}`, false},
		{"heartbeat", &HeartbeatRequest{}, `{` + p + `}`, true},
		{"heartbeat without addrs", &HeartbeatRequest{}, `{"peer":{"id":"` + testPeerID + `"}}`, true},
		{"heartbeat as a seed", &HeartbeatRequest{}, `{"peer":{"id":"` + testPeerID + `","seed":true}}`, false},
		{"heartbeat with preheat results", &HeartbeatRequest{}, `{` + p + `,"preheat":[{"job":"j1",` + task + `},{"job":"j1",` + task + `,"error":"disk full"}]}`, true},
		{"heartbeat, preheat result without job", &HeartbeatRequest{}, `{` + p + `,"preheat":[{` + task + `}]}`, false},
		{"heartbeat, preheat result with a bad task", &HeartbeatRequest{}, `{` + p + `,"preheat":[{"job":"j1","task":"x"}]}`, false},
	}
	for _, c := range cases {
		err := Decode(strings.NewReader(c.body), c.v)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case !c.ok && err == nil:
			t.Errorf("%s: accepted", c.name)
		case !c.ok && !errors.Is(err, ErrBadRequest):
			t.Errorf("%s: %v does not wrap ErrBadRequest", c.name, err)
		}
	}
}

// fuzzDecode checks that Decode never panics on any body, and that what it accepts holds what
// the supernode relies on (checked here without Validate) and survives a round trip.
func fuzzDecode[T any, P interface {
	*T
	PeerRequest
}](f *testing.F, seeds []string, holds func(t *testing.T, req P)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := P(new(T))
		if Decode(bytes.NewReader(body), req) != nil {
			return
		}
		if _, err := peer.Decode(req.Caller()); err != nil {
			t.Fatalf("accepted a caller that is not a peer ID: %q", req.Caller())
		}
		holds(t, req)
		again, _ := json.Marshal(req)
		if err := Decode(bytes.NewReader(again), P(new(T))); err != nil {
			t.Fatalf("accepted %q but not its own encoding %q: %v", body, again, err)
		}
	})
}

func checkPeer(t *testing.T, p Peer) {
	if p.Seed || p.UploadRate < 0 || len(p.Addrs) > maxAddrs {
		t.Fatalf("accepted peer %+v", p)
	}
	for _, a := range p.Addrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			t.Fatalf("accepted address %q", a)
		}
	}
}

func checkTask(t *testing.T, id digest.Digest) {
	if id.Validate() != nil || id.Algorithm() != digest.SHA256 {
		t.Fatalf("accepted task %q", id)
	}
}

func FuzzDecodeRegister(f *testing.F) {
	fuzzDecode(f, []string{
		`{"task":{"url":"https://h/x","digest":"` + testTask.String() + `","header":{"Authorization":["Bearer t"]},"tag":"t"},"peer":{"id":"` + testPeerID + `","addrs":["/ip4/10.0.0.1/tcp/4001","/ip6/::1/tcp/4001"],"uploadRate":100},"have":2}`,
		`{"task":{"url":"http://h:80/x?sig=1"},"peer":{"id":"` + testPeerID + `","addrs":["/dns4/node/tcp/1"],"seed":true}}`,
		`{"task":{"url":"file:///etc/passwd"},"peer":{"id":"x","addrs":[]}}`,
		`{}`, `[]`, `null`, ``,
	}, func(t *testing.T, r *RegisterRequest) {
		u, err := url.Parse(r.Task.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("accepted url %q", r.Task.URL)
		}
		if r.Task.Digest != "" {
			checkTask(t, r.Task.Digest)
		}
		if r.Have < 0 || len(r.Peer.Addrs) == 0 {
			t.Fatalf("accepted %+v", r)
		}
		checkPeer(t, r.Peer)
	})
}

func FuzzDecodeSync(f *testing.F) {
	fuzzDecode(f, []string{
		`{"task":"` + testTask.String() + `","peer":"` + testPeerID + `","have":3,"complete":true,"digestsFrom":2,"waitMs":2000,` +
			`"failures":[{"parent":"` + testPeerID + `","reason":"corrupt"}],"transfers":[{"parent":"p","bytes":10,"ms":3}]}`,
		`{"task":"sha256:00","peer":"` + testPeerID + `","have":-1}`,
		`{"task":"` + testTask.String() + `","peer":"` + testPeerID + `"} x`,
	}, func(t *testing.T, r *SyncRequest) {
		checkTask(t, r.Task)
		if r.Have < 0 || r.DigestsFrom < 0 || r.WaitMillis < 0 {
			t.Fatalf("accepted %+v", r)
		}
		for _, tr := range r.Transfers {
			if tr.Parent == "" || tr.Bytes < 0 || tr.Millis < 0 {
				t.Fatalf("accepted transfer %+v", tr)
			}
		}
		for _, fl := range r.Failures {
			if fl.Parent == "" {
				t.Fatalf("accepted failure %+v", fl)
			}
		}
	})
}

func FuzzDecodeLeave(f *testing.F) {
	fuzzDecode(f, []string{
		`{"task":"` + testTask.String() + `","peer":"` + testPeerID + `"}`,
		`{"task":"","peer":""}`,
	}, func(t *testing.T, r *LeaveRequest) { checkTask(t, r.Task) })
}

func FuzzDecodeHeartbeat(f *testing.F) {
	fuzzDecode(f, []string{
		`{"peer":{"id":"` + testPeerID + `","addrs":["/ip4/10.0.0.1/tcp/4001"]}}`,
		`{"peer":{"id":"` + testPeerID + `","seed":true}}`,
		`{"peer":{"id":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"}}`,
	}, func(t *testing.T, r *HeartbeatRequest) { checkPeer(t, r.Peer) })
}

func TestHoldingHeld(t *testing.T) {
	t.Parallel()
	h := Holding{Bitfield: []byte{0b1000_0001, 0b0100_0000}}
	if got := h.Held(); len(got) != 3 || got[0] != 0 || got[1] != 7 || got[2] != 9 {
		t.Errorf("Held() = %v, want [0 7 9]", got)
	}
}
