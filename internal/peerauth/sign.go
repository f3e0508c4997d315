package peerauth

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Signer signs a peer's calls to the supernode with the peer's libp2p key and, with the cluster
// secret, proves membership; it checks the membership MAC of each answer. It is safe for
// concurrent use.
type Signer struct {
	key    crypto.PrivKey
	id     string
	member *membership
	now    func() time.Time
}

// NewSigner returns a signer for the peer whose identity key is key; secret is the cluster's
// (empty: an open cluster, calls carry the signature only).
func NewSigner(key crypto.PrivKey, secret string) (*Signer, error) {
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("peerauth: the peer's identity must be an Ed25519 key")
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("peerauth: peer ID of the identity key: %w", err)
	}
	return &Signer{key: key, id: id.String(), member: newMembership(secret), now: time.Now}, nil
}

// GenerateSigner returns a signer with a new identity key, for a caller that keeps none (a
// test, a tool acting as a peer); a peer that keeps its ID signs with its host's key.
func GenerateSigner(secret string) (*Signer, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("peerauth: identity key: %w", err)
	}
	return NewSigner(key, secret)
}

// Peer is the signing peer's ID.
func (s *Signer) Peer() string { return s.id }

// Sign adds the authentication headers to r, whose body is body, and returns the call's nonce,
// which CheckAnswer needs. The path signed is r.URL's request URI, as the supernode receives it.
func (s *Signer) Sign(r *http.Request, body []byte) (nonce string, err error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("peerauth: nonce: %w", err)
	}
	nonce = hex.EncodeToString(raw[:])
	date := strconv.FormatInt(s.now().Unix(), 10)
	msg := canonical(r.Method, r.URL.RequestURI(), date, nonce, s.id, body)
	sig, err := s.key.Sign(msg)
	if err != nil {
		return "", fmt.Errorf("peerauth: sign: %w", err)
	}
	r.Header.Set(HeaderPeer, s.id)
	r.Header.Set(HeaderDate, date)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, b64.EncodeToString(sig))
	if s.member != nil {
		r.Header.Set(HeaderMember, b64.EncodeToString(s.member.sum(msg)))
	}
	return nonce, nil
}

// CheckAnswer verifies the membership MAC of the answer to the call signed with nonce. In an
// open cluster there is none to check. With a secret, an answer without a MAC, or with one that
// does not match, did not come from a supernode holding the same secret, or was altered on the
// way: the caller must not act on it.
func (s *Signer) CheckAnswer(nonce string, status int, h http.Header, body []byte) error {
	if s.member == nil {
		return nil
	}
	mac := h.Get(HeaderMember)
	if mac == "" {
		return fmt.Errorf("%w: the answer carries no %s (the supernode runs without the cluster secret, or something in between stripped it)", ErrNoMembership, HeaderMember)
	}
	if !s.member.check(mac, answerString(nonce, status, body)) {
		return fmt.Errorf("%w: the answer's %s is wrong (the supernode holds another cluster secret, or the answer was altered on the way)", ErrBadMembership, HeaderMember)
	}
	return nil
}
