// Package peerauth proves, on every call of the supernode's peer API, which peer is calling and
// that it belongs to the cluster. A peer signs each call with its libp2p identity key: the peer
// ID embeds the Ed25519 public key, so the supernode needs no key registry to check it. When the
// cluster has a secret, the call also carries a membership MAC keyed from that secret, and the
// supernode's answer carries one too, so that nobody without the secret can join, nor swap a
// schedule or piece digests in an answer on its way back.
//
// The client side is Signer (used by internal/snapi's client); the supernode side is Verifier,
// whose Middleware wraps every peer endpoint. Signing costs one Ed25519 signature per API call
// (register, sync, leave, heartbeat), never anything per piece. It imports no daemon.
package peerauth

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed call. The supernode's answer carries HeaderMember when the cluster has a
// secret.
const (
	HeaderPeer      = "X-Pouch-Peer"      // the caller's peer ID
	HeaderDate      = "X-Pouch-Date"      // unix seconds when the call was signed
	HeaderNonce     = "X-Pouch-Nonce"     // 128 random bits, 32 lowercase hex digits
	HeaderSignature = "X-Pouch-Signature" // base64 Ed25519 signature over the canonical string
	HeaderMember    = "X-Pouch-Member"    // base64 HMAC-SHA256 with the cluster's key
)

// Version starts every canonical string; a later scheme gets another.
const Version = "pouch-api-v1"

// Defaults of the supernode's checks.
const (
	// DefaultWindow is how far a call's date may be from the supernode's clock, either way.
	DefaultWindow = 5 * time.Minute
	// DefaultReplayEntries bounds the nonces remembered (about 30 MB when full): at 10,000
	// peers syncing every second they cover the last 26 s, at heartbeat pace the whole window.
	DefaultReplayEntries = 1 << 18
)

// keyInfo separates the API's key from every other use of the cluster secret (libp2p's
// private-network key is sha256 of it).
const keyInfo = "pouch supernode api v1"

// The reasons a call is refused; each verification error wraps one.
var (
	ErrUnsigned       = errors.New("call is not signed")
	ErrMalformed      = errors.New("malformed authentication header")
	ErrNoMembership   = errors.New("membership proof missing")
	ErrBadMembership  = errors.New("membership proof does not match")
	ErrClock          = errors.New("call date outside the accepted window")
	ErrBadSignature   = errors.New("signature does not verify")
	ErrReplay         = errors.New("call replayed")
	ErrCallerMismatch = errors.New("the body speaks for another peer than the signer")
)

// canonical is what the signature and the membership MAC cover: every field on its own line.
// The fields are checked for their form before (digits, hex, a canonical peer ID), so no value
// can contain a newline and shift the others.
func canonical(method, uri, date, nonce, peerID string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(strings.Join([]string{Version, method, uri, date, nonce, peerID, hex.EncodeToString(sum[:])}, "\n"))
}

// answerString is what the MAC of an answer covers: the call's nonce binds it to that call, the
// status and the body's hash to what was said.
func answerString(nonce string, status int, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(strings.Join([]string{Version + " answer", nonce, strconv.Itoa(status), hex.EncodeToString(sum[:])}, "\n"))
}

// membership is the cluster's MAC key; nil in an open cluster.
type membership struct{ key []byte }

func newMembership(secret string) *membership {
	if secret == "" {
		return nil
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, keyInfo, sha256.Size)
	if err != nil {
		panic(err) // only for a key length HKDF-SHA256 cannot give; 32 bytes it always can
	}
	return &membership{key: key}
}

func (m *membership) sum(msg []byte) []byte {
	h := hmac.New(sha256.New, m.key)
	h.Write(msg)
	return h.Sum(nil)
}

// check compares a base64 MAC from a header with the expected one in constant time.
func (m *membership) check(header string, msg []byte) bool {
	got, ok := decodeBase64(header)
	return ok && hmac.Equal(got, m.sum(msg))
}

var b64 = base64.StdEncoding

// decodeBase64 accepts only the canonical encoding: the decoder skips newlines and would let two
// spellings of one value through.
func decodeBase64(s string) ([]byte, bool) {
	b, err := b64.DecodeString(s)
	return b, err == nil && b64.EncodeToString(b) == s
}
