// Package snapi is the supernode's HTTP API as seen from both ends: the JSON messages, their
// decoding and validation, and a client for dfdaemons that signs every call
// (internal/peerauth) and speaks TLS to https:// supernodes. It lives in internal so that
// dfdaemon need not import supernode: both import this. Error answers are internal/apierr's.
package snapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/reqid"
)

// Paths of the peer API.
const (
	PathRegister  = "/api/v1/peers/register"
	PathSync      = "/api/v1/peers/sync"
	PathLeave     = "/api/v1/peers/leave"
	PathHeartbeat = "/api/v1/peers/heartbeat"
	PathTasks     = "/api/v1/tasks"
)

// MaxBody bounds every request body the supernode reads.
const MaxBody = 1 << 20

// Peer identifies a peer and says how to reach it over libp2p.
type Peer struct {
	ID         string   `json:"id"`
	Addrs      []string `json:"addrs"`
	UploadRate int64    `json:"uploadRate,omitempty"` // bytes/s, 0 = unlimited
	Seed       bool     `json:"seed,omitempty"`       // the supernode's seed
	OneShot    bool     `json:"oneShot,omitempty"`    // lives for one download (dfget): no preheat work
}

// TaskRequest names what to download.
type TaskRequest struct {
	URL    string        `json:"url"`
	Header http.Header   `json:"header,omitempty"` // forwarded to the origin by the seed (auth)
	Digest digest.Digest `json:"digest,omitempty"` // content digest: makes the task digest-based
	Tag    string        `json:"tag,omitempty"`
}

// RegisterRequest joins a peer to a task. Have is how many pieces the peer already holds, and
// Holding which ones (after a restart, or when it moves to another supernode).
type RegisterRequest struct {
	Task    TaskRequest `json:"task"`
	Peer    Peer        `json:"peer"`
	Have    int         `json:"have"`
	Holding *Holding    `json:"holding,omitempty"`
	// Want, when set, is the only part of the content this peer needs now (a lazy read: a
	// Range request through the mirror). The seed then fetches from the origin only the
	// pieces that cover what the task's peers want, not the whole content, until a peer
	// registers without Want. Nil: the whole content.
	Want *Span `json:"want,omitempty"`
}

// Span is an inclusive byte span [Start, End] of a content; End may lie past its end.
type Span struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// PieceDigest is the digest of one piece, named by its index.
type PieceDigest struct {
	Index  int           `json:"index"`
	Digest digest.Digest `json:"digest"`
}

// Holding is what a peer already holds of a task, announced when it registers: after its home
// supernode died and it moved to the next one in rendezvous order, after that supernode
// restarted, or when it resumes a download. The supernode takes the task over from these
// announcements: it schedules the holders to the others, and its seed fetches from the origin
// only the pieces no live peer holds. Announced digests are claims: the supernode adopts one
// only when several peers agree and the task's content digest will check the result (see
// scheduler.Holdings and docs/architecture.md, "Several supernodes").
type Holding struct {
	ContentLength int64 `json:"contentLength"`
	PieceSize     int64 `json:"pieceSize"`
	// Bitfield is the held pieces in piece.Bitfield's wire form: bit i in byte i/8, most
	// significant bit first.
	Bitfield []byte `json:"bitfield"`
	// Digests are the digests the held pieces were verified against, in piece order: one per
	// bit set in Bitfield.
	Digests []digest.Digest `json:"digests"`
	// Access and Origin are the task's access ("public", "private") and origin as the peer
	// recorded them.
	Access string `json:"access,omitempty"`
	Origin string `json:"origin,omitempty"`
}

// Held lists the indexes of the pieces set in the bitfield, in order.
func (h *Holding) Held() []int {
	var out []int
	for k, b := range h.Bitfield {
		for j := range 8 {
			if b&(0x80>>j) != 0 {
				out = append(out, 8*k+j)
			}
		}
	}
	return out
}

// TaskInfo is what a peer needs to download a task.
type TaskInfo struct {
	ID            digest.Digest   `json:"id"`
	ContentLength int64           `json:"contentLength"`
	PieceSize     int64           `json:"pieceSize"`
	Digest        digest.Digest   `json:"digest,omitempty"`
	Digests       []digest.Digest `json:"digests"` // piece digests known so far, from piece DigestsFrom on
	DigestsFrom   int             `json:"digestsFrom"`
	// Ahead are the digests known past the prefix Digests ends: the pieces a lazy read made
	// the seed fetch out of order (see RegisterRequest.Want). Every one is sent each time.
	Ahead []PieceDigest `json:"ahead,omitempty"`
	// SeedDone says that every piece digest is known (Digests is complete): the seed holds
	// every piece, or, after a takeover, holds what no live peer holds.
	SeedDone bool `json:"seedDone"`
	// Access is "public" when the seed fetched the content without credentials, "private"
	// when its request carried some (an Authorization, Proxy-Authorization or Cookie header, a
	// signed query); empty (a supernode that does not say) must be read as private with no
	// known origin. Origin is the redacted URL the seed fetched: a private task is served only
	// to requesters that name it and that it accepts.
	Access string `json:"access,omitempty"`
	Origin string `json:"origin,omitempty"`
}

// Schedule is a peer's current parents and whether it must fetch from the origin itself.
type Schedule struct {
	Parents      []Peer `json:"parents"`
	BackToSource bool   `json:"backToSource"`
	Reason       string `json:"reason,omitempty"`
	// Error is set when the task cannot succeed at all (the origin's content does not match
	// its digest): peers stop instead of going back to the origin.
	Error *apierr.Error `json:"error,omitempty"`
}

// Seed is the supernode's seed among the parents, if it is one.
func (s Schedule) Seed() (Peer, bool) {
	for _, p := range s.Parents {
		if p.Seed {
			return p, true
		}
	}
	return Peer{}, false
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	Task     TaskInfo `json:"task"`
	Schedule Schedule `json:"schedule"`
}

// Failure reports that a peer could not use a parent. A report counts only when the supernode
// scheduled the reporter to that parent (now or recently).
type Failure struct {
	Parent string        `json:"parent"`
	Reason FailureReason `json:"reason"`
	// Piece is the index of the piece that failed its digest; a FailCorrupt report without
	// one is ignored. The supernode re-hashes its own copy when the parent is the seed.
	Piece *int `json:"piece,omitempty"`
}

// CorruptPiece is the report of a piece from parent that failed its SHA-256.
func CorruptPiece(parent string, piece int) Failure {
	return Failure{Parent: parent, Reason: FailCorrupt, Piece: &piece}
}

// FailureReason says why a peer could not use a parent; the supernode ignores reasons it does
// not know, so a newer peer may add some.
type FailureReason string

// The reasons a peer reports.
const (
	FailUnreachable FailureReason = "unreachable" // could not connect, or the stream broke
	FailTimeout     FailureReason = "timeout"     // a requested piece did not start in time
	FailCorrupt     FailureReason = "corrupt"     // a piece failed its SHA-256, or a frame was malformed
)

// Transfer reports bytes received from a parent.
type Transfer struct {
	Parent string `json:"parent"`
	Bytes  int64  `json:"bytes"`
	Millis int64  `json:"ms"`
}

// SyncInterval is how often a peer reports its progress once it knows every piece digest (until
// then it long-polls for new ones); dfbench's simulator syncs its peers as often.
const SyncInterval = time.Second

// SyncRequest reports progress in a batch and asks for what changed.
type SyncRequest struct {
	Task        digest.Digest `json:"task"`
	Peer        string        `json:"peer"`
	Have        int           `json:"have"`
	Complete    bool          `json:"complete"`
	DigestsFrom int           `json:"digestsFrom"` // the first piece digest the peer does not know
	Failures    []Failure     `json:"failures,omitempty"`
	Transfers   []Transfer    `json:"transfers,omitempty"`
	WaitMillis  int           `json:"waitMs,omitempty"` // long-poll: hold the answer until a new digest is known
	// Ahead is how many digests past DigestsFrom the peer knows (TaskInfo.Ahead): the long
	// poll waits only while the supernode knows no more than that.
	Ahead int `json:"ahead,omitempty"`
	// Idle says that the peer holds all it wants of the task (a lazy read) and fetches
	// nothing more: it stays a parent for the pieces it holds, and the seed need not wait for
	// it. Its next registration makes it a downloader again.
	Idle bool `json:"idle,omitempty"`
}

// SyncResponse carries new piece digests and the current schedule.
type SyncResponse struct {
	Task     TaskInfo `json:"task"`
	Schedule Schedule `json:"schedule"`
}

// LeaveRequest removes a peer from a task.
type LeaveRequest struct {
	Task digest.Digest `json:"task"`
	Peer string        `json:"peer"`
}

// HeartbeatRequest keeps a peer alive for every task it serves, makes a new peer known to the
// supernode (so preheat jobs reach it), and reports the outcomes of preheat assignments.
type HeartbeatRequest struct {
	Peer    Peer            `json:"peer"`
	Preheat []PreheatResult `json:"preheat,omitempty"`
}

// StatusError is returned by the client for a non-2xx answer; errors.As finds the answer's
// *apierr.Error behind it.
type StatusError struct {
	Status int
	Err    apierr.Error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("supernode: %d: %s", e.Status, e.Err.Message)
}

func (e *StatusError) Unwrap() error { return &e.Err }

// ErrUnavailable wraps every failure to reach the supernode at all (as opposed to an answer).
var ErrUnavailable = errors.New("supernode unavailable")

// ClientConfig is what every client of one peer shares.
type ClientConfig struct {
	// Signer signs every call with the peer's libp2p key (and the cluster secret's MAC) and
	// checks the MAC of every answer. Supernodes refuse unsigned calls; nil sends them unsigned
	// (tests of that refusal only).
	Signer *peerauth.Signer
	// RootCAs, when set, are the only authorities trusted for https:// supernodes (a private
	// CA, --supernode-ca) instead of the system's.
	RootCAs *x509.CertPool
	// Log says when an answer fails its membership check.
	Log *zap.Logger
}

// Client talks to one supernode.
type Client struct {
	Base   string // e.g. https://10.0.0.1:8002
	HTTP   *http.Client
	signer *peerauth.Signer
	log    *zap.Logger
}

// NewClient returns a client for base with sensible timeouts.
func NewClient(base string, cfg ClientConfig) *Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.RootCAs != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 2 * time.Minute, Transport: transport},
		signer: cfg.Signer, log: cfg.Log}
}

// LoadCA reads a PEM bundle of certificate authorities (--supernode-ca); "" gives nil, the
// system's roots.
func LoadCA(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("supernode CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("supernode CA: no PEM certificate in %s", file)
	}
	return pool, nil
}

// Register joins a task; it waits until the seed knows the content length. A task beyond what
// supernodes take (MaxURL, MaxHeaderBytes) makes them unavailable to it: the peer fetches it
// from the origin.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (RegisterResponse, error) {
	var out RegisterResponse
	if err := req.Task.tooLarge(); err != nil {
		return out, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return out, c.post(ctx, PathRegister, req, &out)
}

// Sync reports progress and fetches new digests and the schedule.
func (c *Client) Sync(ctx context.Context, req SyncRequest) (SyncResponse, error) {
	var out SyncResponse
	return out, c.post(ctx, PathSync, req, &out)
}

// Leave removes a peer from a task.
func (c *Client) Leave(ctx context.Context, req LeaveRequest) error {
	return c.post(ctx, PathLeave, req, nil)
}

// Heartbeat tells the supernode the peer is alive and returns its preheat assignments. A
// supernode that answers 204 (before preheat jobs existed) assigns nothing.
func (c *Client) Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error) {
	var out HeartbeatResponse
	return out, c.post(ctx, PathHeartbeat, req, &out)
}

// maxAnswer bounds an answer the client reads (a registration carries every piece digest).
const maxAnswer = 64 << 20

// post makes one signed call. An answer that fails its membership check, and a refusal of this
// peer (401), make the supernode unavailable to this peer, as a network failure does: the
// peer moves on to the next supernode or the origin rather than fail.
func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	reqid.Forward(req) // the download's request ID, for the supernode's log
	var nonce string
	if c.signer != nil {
		if nonce, err = c.signer.Sign(req, body); err != nil {
			return err
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%w: read the answer to %s: %w", ErrUnavailable, path, err)
	}
	if c.signer != nil {
		if err := c.signer.CheckAnswer(nonce, resp.StatusCode, resp.Header, answer); err != nil {
			c.log.Warn("supernode answer failed its membership check: treating the supernode as unavailable",
				zap.String("supernode", c.Base), zap.String("call", path), zap.Error(err))
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, c.Base, err)
		}
	}
	if resp.StatusCode/100 != 2 {
		resp.Body = io.NopCloser(bytes.NewReader(answer))
		body, ours := apierr.Read(resp)
		switch {
		case !ours:
			// Not our API answering (a proxy, a restarting server): treat as unreachable.
			return fmt.Errorf("%w: supernode: %d: %s", ErrUnavailable, resp.StatusCode, body.Message)
		case body.Code == apierr.CodeUnauthorized:
			return fmt.Errorf("%w: %s refused this peer: %s", ErrUnavailable, c.Base, body.Message)
		case body.Code == apierr.CodeLocal:
			// The supernode cannot serve the task itself (its disk is full, the content is
			// beyond its spool cap): the next supernode or the origin can.
			return fmt.Errorf("%w: %s cannot serve it: %s", ErrUnavailable, c.Base, body.Message)
		}
		return &StatusError{Status: resp.StatusCode, Err: body}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%w: bad answer from %s: %w", ErrUnavailable, path, err)
	}
	return nil
}
