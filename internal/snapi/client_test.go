package snapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/peerauth"
)

// With a secret, an answer altered on the way (here: a schedule swapped by something between
// the peer and the supernode) is not acted on: the supernode counts as unavailable, and the
// client says why in one log line.
func TestClientRefusesAlteredAnswers(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	v := peerauth.NewVerifier(peerauth.VerifierConfig{Secret: secret})
	supernode := v.Middleware(MaxBody, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, SyncResponse{Schedule: Schedule{Parents: []Peer{{ID: "honest"}}}})
	}))
	var tamper atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		supernode.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if tamper.Load() {
			body = bytes.Replace(body, []byte("honest"), []byte("evil"), 1)
		}
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer srv.Close()

	signer, err := peerauth.GenerateSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	c := NewClient(srv.URL, ClientConfig{Signer: signer, Log: zap.New(core)})
	req := SyncRequest{Task: testTask, Peer: signer.Peer()}
	resp, err := c.Sync(context.Background(), req)
	if err != nil || resp.Schedule.Parents[0].ID != "honest" {
		t.Fatalf("intact answer: %+v, %v", resp, err)
	}
	tamper.Store(true)
	resp, err = c.Sync(context.Background(), req)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, peerauth.ErrBadMembership) {
		t.Fatalf("altered answer: %+v, %v; want the supernode unavailable", resp, err)
	}
	if logs.FilterMessageSnippet("failed its membership check").Len() != 1 {
		t.Errorf("log lines %v, want one saying the answer failed its membership check", logs.All())
	}
}

// A refusal of this peer (401) makes the supernode unavailable to it, so a download goes on
// from the origin instead of failing; other answers stay answers.
func TestClientRefusalIsUnavailable(t *testing.T) {
	t.Parallel()
	status, code := http.StatusUnauthorized, apierr.CodeUnauthorized
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		httpx.WriteError(w, status, apierr.Error{Code: code, Message: "membership proof missing"})
	}))
	defer srv.Close()
	c := NewClient(srv.URL, ClientConfig{})
	err := c.Leave(context.Background(), LeaveRequest{})
	var se *StatusError
	if !errors.Is(err, ErrUnavailable) || errors.As(err, &se) {
		t.Fatalf("401: %v, want the supernode unavailable", err)
	}
	status, code = http.StatusNotFound, apierr.CodeNotFound
	if err := c.Leave(context.Background(), LeaveRequest{}); !errors.As(err, &se) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("404: %v, want a StatusError", err)
	}
}

// A task beyond what supernodes take is never sent: the supernode is unavailable to it, and
// the peer fetches it from the origin instead of failing. So is a supernode that fails locally.
func TestClientUnavailableForWhatTheSupernodeCannotServe(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		httpx.WriteError(w, http.StatusInsufficientStorage, apierr.Error{Message: "spool cap", Code: apierr.CodeLocal})
	}))
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL, ClientConfig{})
	long := RegisterRequest{Task: TaskRequest{URL: "https://h/" + string(bytes.Repeat([]byte("x"), MaxURL))}}
	if _, err := c.Register(context.Background(), long); !errors.Is(err, ErrUnavailable) || calls.Load() != 0 {
		t.Errorf("a %d-byte URL: %v after %d calls, want ErrUnavailable before any", len(long.Task.URL), err, calls.Load())
	}
	if _, err := c.Register(context.Background(), RegisterRequest{Task: TaskRequest{URL: "https://h/x"}}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a supernode failing locally: %v, want ErrUnavailable", err)
	}
}
