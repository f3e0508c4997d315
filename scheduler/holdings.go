package scheduler

import (
	"math/bits"
	"slices"
)

// Holdings decides, for one task, what a supernode may take from the peers' announcements of
// what they hold: which piece digests to trust, and which pieces its seed need not fetch from
// the origin because a live peer holds them. A supernode meets such announcements when it takes
// a task over (the task's home supernode died and the peers moved to the next one in
// rendezvous order) and when it restarts; in both cases the peers hold pieces they verified
// against digests the seed of some supernode once hashed from the origin.
//
// Announcements are claims. A digest announced by peers is adopted only when quorum distinct
// peers announced the same digest for the piece and no peer announced another one (a conflict
// is final: the seed then fetches the piece and hashes it itself). A peer counts as a holder
// of a piece only when the digest it announced is the trusted one. The seed's own hash always
// wins: when it disagrees with an adopted digest, the peers that announced the adopted one are
// forgotten and named (Trust), so a lie covers nothing once the seed has seen the piece. The
// caller chooses the quorum: 0 adopts nothing (the seed's own hashing is then the only source
// of digests, and announcements still say who holds what).
//
// Like Scheduler it is pure: no I/O, no goroutines, not safe for concurrent use.
type Holdings struct {
	n       int
	quorum  int
	trusted []string
	// claims are the announcements for pieces whose digest is not trusted yet, by peer;
	// conflicted pieces had two different digests announced and are never adopted.
	claims     map[int]map[PeerID]string
	conflicted bitset
	adopted    bitset // trusted digests that came from announcements, not from the seed
	holders    map[PeerID]*holder
	count      []int32 // holders counted per piece
	complete   int     // holders that hold every piece
}

type holder struct {
	announced bitset // what it said it holds, digests trusted or not
	counted   bitset // announced with the trusted digest: in Holdings.count
	complete  bool
	reporters map[PeerID]bool // children that could not reach it
}

// UnreachableReporters is how many distinct children must report a holder unreachable before
// it stops covering its pieces: a child's stream may break for reasons of its own, and one
// child must not make the seed fetch what a live peer holds.
const UnreachableReporters = 2

// NewHoldings tracks a task of the given piece count; quorum is how many distinct peers must
// agree on a piece digest before it is adopted (below 1: never).
func NewHoldings(pieces, quorum int) *Holdings {
	pieces = max(pieces, 0)
	return &Holdings{
		n: pieces, quorum: quorum, trusted: make([]string, pieces), claims: map[int]map[PeerID]string{},
		conflicted: newBitset(pieces), adopted: newBitset(pieces), holders: map[PeerID]*holder{}, count: make([]int32, pieces),
	}
}

// Pieces is the task's piece count.
func (h *Holdings) Pieces() int { return h.n }

// Trusted is the trusted digest of piece i, or "".
func (h *Holdings) Trusted(i int) string {
	if i < 0 || i >= h.n {
		return ""
	}
	return h.trusted[i]
}

// Trust records the digest of piece i that the seed hashed from the origin (or read from its
// own store). Pending claims on the piece are settled: the peers that announced d count as its
// holders. An adopted digest that disagrees is replaced, and the peers that announced it are
// forgotten and returned: they announced a digest the origin's content does not have.
func (h *Holdings) Trust(i int, d string) (liars []PeerID) {
	if i < 0 || i >= h.n || d == "" {
		return nil
	}
	if h.trusted[i] != "" {
		if !h.adopted.has(i) {
			return nil
		}
		h.adopted.clear(i)
		if h.trusted[i] == d {
			return nil
		}
		for p, hd := range h.holders {
			if hd.counted.has(i) {
				liars = append(liars, p)
			}
		}
		slices.Sort(liars)
		for _, p := range liars {
			h.Forget(p)
		}
		h.trusted[i] = d
		return liars
	}
	h.trusted[i] = d
	h.settle(i)
	return nil
}

// settle counts the claimers of piece i that announced its trusted digest, and takes
// completeness from those that announced another; the claims are then done with.
func (h *Holdings) settle(i int) {
	d := h.trusted[i]
	for p, cd := range h.claims[i] {
		hd := h.holders[p]
		switch {
		case cd == d:
			h.countPiece(hd, i)
		case hd != nil && hd.complete:
			// It announced every piece, this one with a digest that turned out wrong.
			hd.complete = false
			h.complete--
		}
	}
	delete(h.claims, i)
}

// Adopted reports whether the trusted digest of piece i came from announcements.
func (h *Holdings) Adopted(i int) bool { return i >= 0 && i < h.n && h.adopted.has(i) }

// Announce records what peer p holds: the pieces held, each with the digest p verified it
// against (digests[k] is the digest of held[k]). It replaces p's earlier announcement. It
// returns the pieces whose digest this announcement got adopted, and how many of p's digests
// disagree with a trusted digest or another peer's claim (those pieces are not counted as p's).
// Indexes out of range are ignored.
func (h *Holdings) Announce(p PeerID, held []int, digests []string) (adopted []int, conflicts int) {
	h.Forget(p)
	hd := &holder{announced: newBitset(h.n), counted: newBitset(h.n)}
	h.holders[p] = hd
	for k, i := range held {
		if i < 0 || i >= h.n || k >= len(digests) || digests[k] == "" || hd.announced.has(i) {
			continue
		}
		d := digests[k]
		hd.announced.set(i)
		switch {
		case h.trusted[i] != "":
			if d == h.trusted[i] {
				h.countPiece(hd, i)
			} else {
				conflicts++
			}
		case h.conflicted.has(i):
			conflicts++
		default:
			if h.claim(p, i, d) {
				adopted = append(adopted, i)
			} else if h.conflicted.has(i) {
				conflicts++
			}
		}
	}
	if hd.announced.count() == h.n && h.n > 0 && conflicts == 0 {
		hd.complete = true
		h.complete++
	}
	return adopted, conflicts
}

// claim adds p's digest d for the untrusted piece i and reports whether that adopted it.
func (h *Holdings) claim(p PeerID, i int, d string) bool {
	c := h.claims[i]
	for _, other := range c {
		if other != d {
			h.conflicted.set(i)
			delete(h.claims, i)
			return false
		}
	}
	if c == nil {
		c = map[PeerID]string{}
		h.claims[i] = c
	}
	c[p] = d
	if h.quorum < 1 || len(c) < h.quorum {
		return false
	}
	h.trusted[i] = d
	h.adopted.set(i)
	h.settle(i)
	return true
}

func (h *Holdings) countPiece(hd *holder, i int) {
	if hd == nil || hd.counted.has(i) {
		return
	}
	hd.counted.set(i)
	h.count[i]++
}

// SetComplete records that peer p holds every piece (it reported its download complete,
// after checking the whole content).
func (h *Holdings) SetComplete(p PeerID) {
	hd := h.holders[p]
	if hd == nil {
		hd = &holder{announced: newBitset(h.n), counted: newBitset(h.n)}
		h.holders[p] = hd
	}
	if !hd.complete {
		hd.complete = true
		h.complete++
	}
}

// Forget drops p: it left, expired, or a child reported it could not get a piece from it, so
// it covers nothing any more. Its claims on untrusted pieces are withdrawn (a conflict stays).
// It reports whether p was known.
func (h *Holdings) Forget(p PeerID) bool {
	hd := h.holders[p]
	if hd == nil {
		return false
	}
	delete(h.holders, p)
	if hd.complete {
		h.complete--
	}
	for i := range h.n {
		if hd.counted.has(i) {
			h.count[i]--
		}
		if hd.announced.has(i) {
			if c := h.claims[i]; c != nil {
				delete(c, p)
				if len(c) == 0 {
					delete(h.claims, i)
				}
			}
		}
	}
	return true
}

// Unreachable records that child could not reach holder p, and forgets p once
// UnreachableReporters distinct children did; it reports whether it did.
func (h *Holdings) Unreachable(p, child PeerID) bool {
	hd := h.holders[p]
	if hd == nil || p == child {
		return false
	}
	if hd.reporters == nil {
		hd.reporters = map[PeerID]bool{}
	}
	hd.reporters[child] = true
	return len(hd.reporters) >= UnreachableReporters && h.Forget(p)
}

// Covered reports whether a live holder holds piece i with its trusted digest: the seed need
// not fetch it from the origin while that lasts.
func (h *Holdings) Covered(i int) bool {
	if i < 0 || i >= h.n || h.trusted[i] == "" {
		return false
	}
	return h.count[i] > 0 || h.complete > 0
}

// Holds reports whether p said it holds piece i (trusted or not): the seed need not offer it
// to p.
func (h *Holdings) Holds(p PeerID, i int) bool {
	hd := h.holders[p]
	return hd != nil && (hd.complete || hd.announced.has(i))
}

// Complete reports whether p holds every piece.
func (h *Holdings) Complete(p PeerID) bool {
	hd := h.holders[p]
	return hd != nil && hd.complete
}

// bitset is a fixed-size set of piece indexes.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (i & 63) }

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
