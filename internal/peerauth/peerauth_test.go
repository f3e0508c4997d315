package peerauth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pouch-p2p/pouch/internal/apierr"
)

const path = "/api/v1/peers/register"

func newKey(tb testing.TB) crypto.PrivKey {
	tb.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newSigner(tb testing.TB, secret string) *Signer {
	tb.Helper()
	s, err := GenerateSigner(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// signed returns a call signed by s, as the supernode receives it.
func signed(tb testing.TB, s *Signer, body string) *http.Request {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if _, err := s.Sign(r, []byte(body)); err != nil {
		tb.Fatal(err)
	}
	return r
}

func verify(v *Verifier, r *http.Request, body string) (string, error) {
	return v.Verify(r.Method, r.URL.RequestURI(), r.Header, []byte(body))
}

func TestVerifyAcceptsSignedCalls(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"", "s3cret"} {
		s := newSigner(t, secret)
		v := NewVerifier(VerifierConfig{Secret: secret})
		got, err := verify(v, signed(t, s, `{"a":1}`), `{"a":1}`)
		if err != nil || got != s.Peer() {
			t.Fatalf("secret %q: Verify = %q, %v; want %s", secret, got, err, s.Peer())
		}
	}
}

// Every way a call can be wrong is refused with its own error.
func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	const body = `{"peer":{"id":"x"}}`
	member := newSigner(t, "s3cret")
	other, err := NewSigner(newKey(t), "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, _ := peer.IDFromPrivateKey(secp)
	hashedID, err := peer.IDFromBytes(append([]byte{0x12, 0x20}, make([]byte, 32)...)) // a sha256 multihash: no key inside
	if err != nil {
		t.Fatal(err)
	}
	set := func(name, value string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set(name, value) }
	}
	del := func(name string) func(r *http.Request) { return func(r *http.Request) { r.Header.Del(name) } }
	cases := []struct {
		name   string
		signer *Signer
		secret string // the supernode's
		clock  time.Duration
		tamper func(r *http.Request)
		body   string // what the supernode reads; "" = body
		want   error
	}{
		{"no headers at all", member, "s3cret", 0, func(r *http.Request) { r.Header = http.Header{} }, "", ErrUnsigned},
		{"no signature", member, "s3cret", 0, del(HeaderSignature), "", ErrUnsigned},
		{"no peer", member, "s3cret", 0, del(HeaderPeer), "", ErrUnsigned},
		{"no date", member, "s3cret", 0, del(HeaderDate), "", ErrUnsigned},
		{"no nonce", member, "s3cret", 0, del(HeaderNonce), "", ErrUnsigned},
		{"date not unix seconds", member, "s3cret", 0, set(HeaderDate, "yesterday"), "", ErrMalformed},
		{"date with a plus sign", member, "s3cret", 0, func(r *http.Request) { r.Header.Set(HeaderDate, "+"+r.Header.Get(HeaderDate)) }, "", ErrMalformed},
		{"nonce too short", member, "s3cret", 0, set(HeaderNonce, "abcd"), "", ErrMalformed},
		{"nonce upper case", member, "s3cret", 0, func(r *http.Request) { r.Header.Set(HeaderNonce, strings.ToUpper(r.Header.Get(HeaderNonce))+"") }, "", ErrMalformed},
		{"peer not an ID", member, "s3cret", 0, set(HeaderPeer, "the-seed"), "", ErrMalformed},
		{"peer ID without an embedded key", member, "s3cret", 0, set(HeaderPeer, hashedID.String()), "", ErrMalformed},
		{"peer ID of a secp256k1 key", member, "s3cret", 0, set(HeaderPeer, secpID.String()), "", ErrMalformed},
		{"signature not base64", member, "s3cret", 0, set(HeaderSignature, "!!"), "", ErrMalformed},
		{"signature with a newline in its base64", member, "s3cret", 0, func(r *http.Request) {
			s := r.Header.Get(HeaderSignature)
			r.Header.Set(HeaderSignature, s[:4]+"\n"+s[4:])
		}, "", ErrMalformed},
		{"no membership proof", newSigner(t, ""), "s3cret", 0, nil, "", ErrNoMembership},
		{"another cluster's secret", newSigner(t, "other"), "s3cret", 0, nil, "", ErrBadMembership},
		{"body changed under the MAC", member, "s3cret", 0, nil, `{"peer":{"id":"y"}}`, ErrBadMembership},
		{"signed six minutes ago", member, "s3cret", 6 * time.Minute, nil, "", ErrClock},
		{"signed six minutes ahead", member, "s3cret", -6 * time.Minute, nil, "", ErrClock},
		// A member signs with its own key a call that names another peer: the MAC holds, the
		// signature does not.
		{"claims another peer's ID", &Signer{key: member.key, id: other.Peer(), member: member.member, now: time.Now}, "s3cret", 0, nil, "", ErrBadSignature},
		{"peer header swapped after signing", member, "s3cret", 0, set(HeaderPeer, other.Peer()), "", ErrBadMembership},
		{"signature of another call", member, "s3cret", 0, func(r *http.Request) {
			r.Header.Set(HeaderSignature, signed(t, member, "{}").Header.Get(HeaderSignature))
		}, "", ErrBadSignature},
		{"open cluster: body changed", newSigner(t, ""), "", 0, nil, `{"peer":{"id":"y"}}`, ErrBadSignature},
		{"open cluster: path changed", newSigner(t, ""), "", 0, func(r *http.Request) { r.URL.Path = "/api/v1/peers/leave" }, "", ErrBadSignature},
		{"open cluster: method changed", newSigner(t, ""), "", 0, func(r *http.Request) { r.Method = http.MethodPut }, "", ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			now := time.Now()
			v := NewVerifier(VerifierConfig{Secret: c.secret, Now: func() time.Time { return now.Add(c.clock) }})
			r := signed(t, c.signer, body)
			if c.tamper != nil {
				c.tamper(r)
			}
			read := body
			if c.body != "" {
				read = c.body
			}
			_, err := verify(v, r, read)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error echoes the secret: %v", err)
			}
		})
	}
}

func TestVerifyRefusesReplay(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "s3cret")
	v := NewVerifier(VerifierConfig{Secret: "s3cret"})
	r := signed(t, s, "{}")
	if _, err := verify(v, r, "{}"); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(v, r, "{}"); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: Verify = %v, want %v", err, ErrReplay)
	}
	if _, err := verify(v, signed(t, s, "{}"), "{}"); err != nil {
		t.Fatalf("the same call signed anew: %v", err)
	}
}

// When the replay cache is full, a dropped nonce cannot be replayed: calls dated at or before
// the newest dropped one are refused, newer ones still pass.
func TestVerifyFullReplayCacheRefusesOlderCalls(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "")
	now := time.Now()
	v := NewVerifier(VerifierConfig{ReplayEntries: 2, Now: func() time.Time { return now }})
	at := func(d time.Duration) *http.Request {
		s.now = func() time.Time { return now.Add(d) }
		return signed(t, s, "{}")
	}
	first := at(-3 * time.Second)
	for _, r := range []*http.Request{first, at(-2 * time.Second), at(-time.Second)} {
		if _, err := verify(v, r, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := verify(v, first, "{}"); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of a call dropped from the full cache: %v, want %v", err, ErrReplay)
	}
	if _, err := verify(v, at(-3*time.Second), "{}"); !errors.Is(err, ErrReplay) {
		t.Fatalf("a fresh nonce dated at the dropped one's second: %v, want %v", err, ErrReplay)
	}
	if _, err := verify(v, at(0), "{}"); err != nil {
		t.Fatalf("a call newer than every dropped one: %v", err)
	}
}

func TestNewSignerWantsEd25519(t *testing.T) {
	t.Parallel()
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(secp, ""); err == nil {
		t.Fatal("NewSigner took a secp256k1 key")
	}
	if _, err := NewSigner(nil, ""); err == nil {
		t.Fatal("NewSigner took no key")
	}
}

// The middleware answers refusals with 401 unauthorized, hands the handler the body and the
// caller, and (with a secret) binds every answer to its call with a MAC the signer checks.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	v := NewVerifier(VerifierConfig{Secret: secret})
	h := v.Middleware(1<<10, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(Caller(r.Context()) + " said " + string(body)))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	call := func(s *Signer, body string) (*http.Response, []byte, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		nonce := ""
		if s != nil {
			var err error
			if nonce, err = s.Sign(r, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, data, nonce
	}

	s := newSigner(t, secret)
	resp, data, nonce := call(s, "hello")
	if resp.StatusCode != http.StatusAccepted || string(data) != s.Peer()+" said hello" {
		t.Fatalf("signed call: %d %q", resp.StatusCode, data)
	}
	if err := s.CheckAnswer(nonce, resp.StatusCode, resp.Header, data); err != nil {
		t.Fatalf("the answer's MAC: %v", err)
	}
	if err := s.CheckAnswer(nonce, resp.StatusCode, resp.Header, append(data, '!')); !errors.Is(err, ErrBadMembership) {
		t.Errorf("an altered answer body: %v, want %v", err, ErrBadMembership)
	}
	if err := s.CheckAnswer(nonce, http.StatusOK, resp.Header, data); !errors.Is(err, ErrBadMembership) {
		t.Errorf("an altered answer status: %v, want %v", err, ErrBadMembership)
	}
	if err := s.CheckAnswer("00000000000000000000000000000000", resp.StatusCode, resp.Header, data); !errors.Is(err, ErrBadMembership) {
		t.Errorf("the answer to another call: %v, want %v", err, ErrBadMembership)
	}
	if err := s.CheckAnswer(nonce, resp.StatusCode, http.Header{}, data); !errors.Is(err, ErrNoMembership) {
		t.Errorf("an answer without a MAC: %v, want %v", err, ErrNoMembership)
	}
	if err := newSigner(t, "").CheckAnswer(nonce, resp.StatusCode, http.Header{}, data); err != nil {
		t.Errorf("an open cluster's signer checks no MAC: %v", err)
	}

	resp, data, _ = call(nil, "hello")
	e, _ := apierr.Read(&http.Response{StatusCode: resp.StatusCode, Body: io.NopCloser(bytes.NewReader(data))})
	if resp.StatusCode != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, HeaderPeer) {
		t.Fatalf("unsigned call: %d %+v, want 401 unauthorized naming the missing header", resp.StatusCode, e)
	}
	if resp.Header.Get(HeaderMember) == "" {
		t.Error("a refusal carries no MAC")
	}
	resp, _, _ = call(s, strings.Repeat("x", 1<<10+1))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", resp.StatusCode)
	}
}

// FuzzVerify signs a call, changes one of its parts to the fuzzer's value, and checks that
// Verify accepts it exactly when nothing changed.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, "s3cret")
	v := NewVerifier(VerifierConfig{Secret: "s3cret"})
	sample := signed(f, s, "{}")
	for i, h := range []string{HeaderPeer, HeaderDate, HeaderNonce, HeaderSignature, HeaderMember} {
		f.Add(uint8(i), sample.Header.Get(h), []byte(`{"peer":"x"}`))
		f.Add(uint8(i), "", []byte("{}"))
	}
	f.Add(uint8(1), strconv.FormatInt(time.Now().Unix()+1, 10), []byte{})
	f.Add(uint8(5), "GET", []byte("{}"))
	f.Add(uint8(6), "/api/v1/peers/sync", []byte("{}"))
	f.Add(uint8(7), `{"peer":"y"}`, []byte(`{"peer":"x"}`))
	f.Add(uint8(8), "", []byte(nil))
	f.Fuzz(func(t *testing.T, part uint8, value string, body []byte) {
		r := signed(t, s, string(body))
		method, uri, read := r.Method, r.URL.RequestURI(), body
		var was string
		switch part % 9 {
		case 0, 1, 2, 3, 4:
			name := []string{HeaderPeer, HeaderDate, HeaderNonce, HeaderSignature, HeaderMember}[part%9]
			was = r.Header.Get(name)
			r.Header.Set(name, value)
		case 5:
			was, method = method, value
		case 6:
			was, uri = uri, value
		case 7:
			was, read = string(body), []byte(value)
		case 8:
			// unchanged
		}
		changed := part%9 != 8 && value != was
		_, err := v.Verify(method, uri, r.Header, read)
		switch {
		case changed && err == nil:
			t.Fatalf("part %d changed from %q to %q, and the call was accepted", part%9, was, value)
		case !changed && err != nil:
			t.Fatalf("an intact call was refused: %v", err)
		}
	})
}

// BenchmarkSignVerify measures what authentication adds to one API call on a registration-sized
// body: the peer's side (signature, MAC) and the supernode's (MAC, signature check, replay
// cache), each on its own.
func BenchmarkSignVerify(b *testing.B) {
	body := []byte(strings.Repeat("x", 1<<10))
	for _, secret := range []string{"", "s3cret"} {
		cluster := "open"
		if secret != "" {
			cluster = "secret"
		}
		s := newSigner(b, secret)
		b.Run(cluster+"/sign", func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, path, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(r, body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
		})
		b.Run(cluster+"/verify", func(b *testing.B) {
			v := NewVerifier(VerifierConfig{Secret: secret})
			calls := make([]http.Header, b.N)
			for i := range calls {
				calls[i] = signed(b, s, string(body)).Header
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := v.Verify(http.MethodPost, path, calls[i], body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s/core")
		})
	}
}
