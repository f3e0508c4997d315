package peer

import (
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// announcer decides which pieces one child stream is told about.
type announcer interface {
	initial() piece.Bitfield        // the bitfield sent after hello
	update(now time.Time) []int     // pieces to announce now
	requested(i int, now time.Time) // the child asked for piece i
	sent(i int)                     // piece i went out to the child
	close()                         // the stream ended
}

// fullAnnouncer tells the child about every piece it holds, as soon as it holds it.
type fullAnnouncer struct {
	task *piece.Task
	told piece.Bitfield
}

func (a *fullAnnouncer) initial() piece.Bitfield {
	a.told = a.task.Bitfield()
	return a.told
}

func (a *fullAnnouncer) update(time.Time) []int {
	now := a.task.Bitfield()
	var out []int
	for i := range now.Len() {
		if now.Has(i) && !a.told.Has(i) {
			out = append(out, i)
		}
	}
	a.told = now
	return out
}

func (a *fullAnnouncer) requested(int, time.Time) {}
func (a *fullAnnouncer) sent(int)                 {}
func (a *fullAnnouncer) close()                   {}

// superSeedTick is how often offers are refreshed (the policy is picker's: an offer expires
// after picker.OfferExpiry, picker.IdleOfferExpiry for an idle child).
const superSeedTick = 250 * time.Millisecond

// superState is shared by every child stream of one task: how often each piece was sent, and
// how many children hold an open offer for it.
type superState struct {
	mu      sync.Mutex
	sent    []int
	offered []int
	pending *atomic.Int64 // pieces pending over every task of this server: one upload serves them all
	// foreground counts the streams of this server, over every task, that serve a pull a client
	// waits for (see Server.SetBackground).
	foreground *atomic.Int64
	// active counts the streams of this server, over every task, that are not idle: idle ones
	// leave each of them its share of offers (picker.SeedOffers).
	active  *atomic.Int64
	streams int
	// have and grew: how many pieces the seed held at the last update of any stream, and when
	// that last grew (see superAnnouncer.update).
	have int
	grew time.Time
}

func (s *Server) superSeed(t *piece.Task) *superState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.supers == nil {
		s.supers = map[digest.Digest]*superState{}
	}
	id := t.Meta().ID
	st, ok := s.supers[id]
	if !ok {
		st = &superState{sent: make([]int, t.PieceCount()), offered: make([]int, t.PieceCount()), pending: &s.superPending,
			foreground: &s.superForeground, active: &s.superActive}
		s.supers[id] = st
	}
	st.mu.Lock() // streams is guarded by st.mu, like everything superAnnouncer.close touches
	st.streams++
	st.mu.Unlock()
	return st
}

// superAnnouncer offers a child the pieces sent least often so far, a few at a time.
type superAnnouncer struct {
	task   *piece.Task
	st     *superState
	offers map[int]time.Time // pieces offered to this child and not yet sent
	asked  map[int]bool      // offers the child has requested: they no longer expire
	told   map[int]bool      // everything ever offered to this child
	quota  int
	// background says whether the stream only warms a cache (see Server.SetBackground);
	// counted says it is counted in st.foreground.
	background func() bool
	counted    bool
	// idle: an offer expired while the child had requested nothing since it was made
	// (picker.Expired); lastRequest is when it last requested a piece; counted in
	// st.active while not idle.
	idle        bool
	lastRequest time.Time
	active      bool
	// held says which pieces the child already holds (see Server.SetHeld); nil: none known.
	held func(int) bool
}

func (a *superAnnouncer) initial() piece.Bitfield {
	a.told, a.asked = map[int]bool{}, map[int]bool{}
	return piece.NewBitfield(a.task.PieceCount())
}

func (a *superAnnouncer) update(now time.Time) []int {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	idle := a.idle // as the pass starts: an offer expiring in it does not shorten the others
	for i, at := range a.offers {
		if picker.Expired(at, now, a.asked[i], idle) {
			delete(a.offers, i)
			a.st.offered[i]--
			a.st.pending.Add(-1)
			if a.lastRequest.Before(at) {
				a.idle = true
			}
		}
	}
	if a.active == a.idle { // the stream turned idle or active again (or is new)
		a.active = !a.idle
		if a.active {
			a.st.active.Add(1)
		} else {
			a.st.active.Add(-1)
		}
	}
	bg := a.background != nil && a.background()
	if a.counted == bg { // the stream changed class (or is new)
		a.counted = !bg
		if bg {
			a.st.foreground.Add(-1)
		} else {
			a.st.foreground.Add(1)
		}
	}
	quota, limit := picker.Budget(picker.Stream{Offers: a.quota, Idle: a.idle, Background: bg,
		Foreground: a.st.foreground.Load() > 0, Active: int(a.st.active.Load())})
	if have := a.task.Bitfield().Count(); have != a.st.have {
		a.st.have, a.st.grew = have, now
	}
	once := picker.Once(a.task.Complete(), a.st.grew, now)
	load := func(i int) int { return a.st.sent[i] + a.st.offered[i] }
	eligible := func(i int) bool { return !a.told[i] && a.task.Has(i) && (a.held == nil || !a.held(i)) }
	var out []int
	for len(a.offers) < quota && a.st.pending.Load() < int64(limit) {
		best := picker.Offer(len(a.st.sent), once, load, eligible)
		if best < 0 {
			break
		}
		a.offers[best], a.told[best] = now, true
		a.st.offered[best]++
		a.st.pending.Add(1)
		out = append(out, best)
	}
	return out
}

func (a *superAnnouncer) requested(i int, now time.Time) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	if _, ok := a.offers[i]; ok {
		a.asked[i] = true
	}
	a.lastRequest, a.idle = now, false
}

func (a *superAnnouncer) sent(i int) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	if i < 0 || i >= len(a.st.sent) {
		return
	}
	if _, ok := a.offers[i]; ok {
		delete(a.offers, i)
		delete(a.asked, i)
		a.st.offered[i]--
		a.st.pending.Add(-1)
	}
	a.st.sent[i]++
}

func (a *superAnnouncer) close() {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	for i := range a.offers {
		a.st.offered[i]--
		a.st.pending.Add(-1)
	}
	a.offers = nil
	if a.counted {
		a.st.foreground.Add(-1)
	}
	if a.active {
		a.st.active.Add(-1)
	}
	a.st.streams--
}
