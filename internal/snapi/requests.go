package snapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/url"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	digest "github.com/opencontainers/go-digest"
)

// PeerRequest is the body of a call a peer makes for itself. Caller names that peer: the
// supernode serves the call only when it is the peer that signed it (internal/peerauth), so no
// peer can speak for another, nor for the seed. Every peer endpoint's body implements it, and
// the supernode decodes them all with Decode.
type PeerRequest interface {
	Caller() string
	Validate() error
}

// ErrBadRequest wraps every reason Decode refuses a body.
var ErrBadRequest = errors.New("bad request body")

// maxAddrs bounds the addresses a peer may announce (a host listening on every interface of a
// busy node has a handful; this leaves room).
const maxAddrs = 64

// Decode reads one JSON request from r into v — unknown fields and trailing data refused — and
// validates it.
func Decode(r io.Reader, v PeerRequest) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrBadRequest)
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// Caller is the registering peer.
func (r *RegisterRequest) Caller() string { return r.Peer.ID }

// Bounds of a registration's task: a failed task is remembered (bounded in number, see the
// supernode's failedTaskTTL) with its URL, and the headers stay in memory while its seed runs,
// so a body of 1 MiB must not become a URL of 1 MiB. Pre-signed URLs are a few KiB; bearer
// tokens and cookies a few KiB each.
const (
	MaxURL         = 16 << 10
	MaxHeaderBytes = 64 << 10
)

// Validate checks what the supernode relies on: an absolute http(s) URL, a sha256 digest if
// any, bounded URL and headers, and a peer that can be dialled.
func (r *RegisterRequest) Validate() error {
	if err := r.Task.tooLarge(); err != nil {
		return err
	}
	u, err := url.Parse(r.Task.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("task url must be an absolute http or https URL")
	}
	if d := r.Task.Digest; d != "" && (d.Validate() != nil || d.Algorithm() != digest.SHA256) {
		return fmt.Errorf("task digest %q is not sha256:<64 hex>", d)
	}
	if r.Have < 0 {
		return errors.New("have must not be negative")
	}
	if len(r.Peer.Addrs) == 0 {
		return errors.New("peer id and addrs are required")
	}
	if r.Holding != nil {
		if err := r.Holding.validate(); err != nil {
			return err
		}
	}
	if w := r.Want; w != nil && (w.Start < 0 || w.End < w.Start) {
		return fmt.Errorf("want: bytes %d-%d is not a span", w.Start, w.End)
	}
	return r.Peer.validate()
}

// Bounds of a holding: a peer announces the digests of at most MaxHeldDigests pieces (about
// 600 KiB of JSON, inside MaxBody), and a bitfield of at most maxBitfield bytes (2^20 pieces,
// the most a task may have).
const (
	MaxHeldDigests = 8192
	maxBitfield    = 1 << 17
	maxOrigin      = 8 << 10
)

func (h *Holding) validate() error {
	if h.ContentLength < 0 || h.PieceSize <= 0 {
		return errors.New("holding: content length must not be negative and the piece size must be positive")
	}
	if len(h.Bitfield) > maxBitfield || len(h.Digests) > MaxHeldDigests {
		return fmt.Errorf("holding: at most %d digests and a %d-byte bitfield", MaxHeldDigests, maxBitfield)
	}
	held := 0
	for _, b := range h.Bitfield {
		held += bits.OnesCount8(b)
	}
	if held != len(h.Digests) {
		return fmt.Errorf("holding: %d pieces held, %d digests", held, len(h.Digests))
	}
	for _, d := range h.Digests {
		if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
			return fmt.Errorf("holding: piece digest %q is not sha256:<64 hex>", d)
		}
	}
	if h.Access != "" && h.Access != "public" && h.Access != "private" {
		return fmt.Errorf("holding: access %q is neither public nor private", h.Access)
	}
	if len(h.Origin) > maxOrigin {
		return fmt.Errorf("holding: origin longer than %d bytes", maxOrigin)
	}
	return nil
}

// tooLarge says why a task is beyond MaxURL or MaxHeaderBytes, or nil.
func (t *TaskRequest) tooLarge() error {
	if len(t.URL) > MaxURL || len(t.Tag) > MaxURL {
		return fmt.Errorf("task url and tag must be at most %d bytes", MaxURL)
	}
	size := 0
	for k, vs := range t.Header {
		size += len(k)
		for _, v := range vs {
			size += len(v)
		}
	}
	if size > MaxHeaderBytes {
		return fmt.Errorf("task headers take %d bytes, at most %d", size, MaxHeaderBytes)
	}
	return nil
}

// Caller is the syncing peer.
func (r *SyncRequest) Caller() string { return r.Peer }

// Validate checks the task, the peer and that no count is negative.
func (r *SyncRequest) Validate() error {
	if err := validTask(r.Task); err != nil {
		return err
	}
	if err := validPeerID(r.Peer); err != nil {
		return err
	}
	if r.Have < 0 || r.DigestsFrom < 0 || r.WaitMillis < 0 || r.Ahead < 0 {
		return errors.New("have, digestsFrom, waitMs and ahead must not be negative")
	}
	for _, f := range r.Failures {
		if f.Parent == "" {
			return errors.New("a failure must name its parent")
		}
	}
	for _, t := range r.Transfers {
		if t.Parent == "" || t.Bytes < 0 || t.Millis < 0 {
			return errors.New("a transfer must name its parent and count no negative bytes or time")
		}
	}
	return nil
}

// Caller is the leaving peer.
func (r *LeaveRequest) Caller() string { return r.Peer }

// Validate checks the task and the peer.
func (r *LeaveRequest) Validate() error {
	if err := validTask(r.Task); err != nil {
		return err
	}
	return validPeerID(r.Peer)
}

// Caller is the peer that is alive.
func (r *HeartbeatRequest) Caller() string { return r.Peer.ID }

// Bounds of a heartbeat's preheat report.
const (
	maxPreheatResults = 1024
	maxPreheatError   = 4 << 10
)

// Validate checks the peer (its addresses are optional: the last ones known are kept) and the
// preheat outcomes it reports.
func (r *HeartbeatRequest) Validate() error {
	if len(r.Preheat) > maxPreheatResults {
		return fmt.Errorf("%d preheat results, at most %d", len(r.Preheat), maxPreheatResults)
	}
	for _, res := range r.Preheat {
		if res.Job == "" || len(res.Job) > 64 || len(res.Error) > maxPreheatError {
			return errors.New("a preheat result names its job and says why it failed in at most 4 KiB")
		}
		if err := validTask(res.Task); err != nil {
			return err
		}
	}
	return r.Peer.validate()
}

func (p *Peer) validate() error {
	if err := validPeerID(p.ID); err != nil {
		return err
	}
	if p.Seed {
		return errors.New("a peer cannot announce itself as the seed: only the supernode's own seed is one")
	}
	if p.UploadRate < 0 {
		return errors.New("peer uploadRate must not be negative")
	}
	if len(p.Addrs) > maxAddrs {
		return fmt.Errorf("peer announces %d addresses, at most %d", len(p.Addrs), maxAddrs)
	}
	for _, a := range p.Addrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return fmt.Errorf("peer address %q is not a multiaddr", a)
		}
	}
	return nil
}

func validPeerID(id string) error {
	if id == "" {
		return errors.New("peer id and addrs are required")
	}
	if p, err := peer.Decode(id); err != nil || p.String() != id {
		return fmt.Errorf("peer %q is not a peer ID", id)
	}
	return nil
}

func validTask(id digest.Digest) error {
	if id.Validate() != nil || id.Algorithm() != digest.SHA256 {
		return fmt.Errorf("task %q is not sha256:<64 hex>", id)
	}
	return nil
}

// compile-time checks: every peer endpoint's body is a PeerRequest.
var (
	_ PeerRequest = (*RegisterRequest)(nil)
	_ PeerRequest = (*SyncRequest)(nil)
	_ PeerRequest = (*LeaveRequest)(nil)
	_ PeerRequest = (*HeartbeatRequest)(nil)
)
