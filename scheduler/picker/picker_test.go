package picker

import (
	"testing"
	"time"
)

// child is a table's download: avail per piece, and the pieces usable from the parent.
type child struct {
	avail  []int
	usable map[int]bool
}

func (c child) Avail(i int) int   { return c.avail[i] }
func (c child) Usable(i int) bool { return c.usable[i] }

func set(is ...int) map[int]bool {
	m := map[int]bool{}
	for _, i := range is {
		m[i] = true
	}
	return m
}

func TestPick(t *testing.T) {
	t.Parallel()
	at := func(k int) func(int) int { return func(int) int { return k } }
	for _, tc := range []struct {
		name string
		c    Choice
		ch   child
		want int
	}{
		{"nothing usable", Choice{Pieces: 4, Cursor: -1, Start: at(0)}, child{avail: []int{1, 1, 1, 1}}, -1},
		{"empty task", Choice{Pieces: 0, Cursor: -1, Start: at(0)}, child{}, -1},
		{"rarest", Choice{Pieces: 4, Cursor: -1, Start: at(0)}, child{[]int{3, 2, 1, 2}, set(0, 1, 2, 3)}, 2},
		{"rarest that is usable", Choice{Pieces: 4, Cursor: -1, Start: at(0)}, child{[]int{3, 2, 1, 2}, set(0, 1, 3)}, 1},
		{"ties go to the first from the start", Choice{Pieces: 4, Cursor: -1, Start: at(2)}, child{[]int{1, 1, 1, 1}, set(0, 1, 3)}, 3},
		{"ties wrap around", Choice{Pieces: 4, Cursor: -1, Start: at(3)}, child{[]int{1, 1, 1, 2}, set(0, 1, 3)}, 0},
		{"the reader's next piece first", Choice{Pieces: 16, Cursor: 4, Start: at(0)}, child{make([]int, 16), set(0, 6, 7)}, 6},
		{"the window ends after Window pieces", Choice{Pieces: 16, Cursor: 0, Start: at(0)}, child{[]int{0, 0, 0, 0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5, 9, 1}, set(14, 15)}, 15},
		{"the window stops at the end of the task", Choice{Pieces: 4, Cursor: 2, Start: at(0)}, child{[]int{1, 5, 5, 5}, set(0)}, 0},
		{"from the seed, the rarest, not the reader's", Choice{Pieces: 16, Cursor: 4, FromSeed: true, Start: at(0)}, child{[]int{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 9, 9, 9, 9, 9}, set(4, 10)}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Pick(tc.c, tc.ch); got != tc.want {
				t.Errorf("Pick = %d, want %d", got, tc.want)
			}
		})
	}
}

// The random start is drawn only when the window does not answer: a caller's random sequence
// (the simulator's, seeded) does not move with how often a reader waits.
func TestPickDrawsOnlyForTheRarest(t *testing.T) {
	t.Parallel()
	draws := 0
	start := func(int) int { draws++; return 0 }
	Pick(Choice{Pieces: 8, Cursor: 0, Start: start}, child{make([]int, 8), set(1)})
	if draws != 0 {
		t.Errorf("%d draws when the window answered, want 0", draws)
	}
	Pick(Choice{Pieces: 8, Cursor: 0, FromSeed: true, Start: start}, child{make([]int, 8), set(1)})
	Pick(Choice{Pieces: 8, Cursor: -1, Start: start}, child{make([]int, 8), set(1)})
	if draws != 2 {
		t.Errorf("%d draws for two rarest-first choices, want 2", draws)
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		s            Stream
		quota, limit int
	}{
		{"a client's stream", Stream{Offers: SeedOffers, Foreground: true, Active: 3}, SeedOffers, SeedPending},
		{"a preheat alone", Stream{Offers: SeedOffers, Background: true}, SeedOffers, SeedPending},
		{"a preheat beside a client's pull", Stream{Offers: SeedOffers, Background: true, Foreground: true}, SeedOffers, SeedPending / 2},
		{"an idle stream gets what the active leave, one at a time", Stream{Offers: SeedOffers, Idle: true, Active: 3}, 1, SeedPending - 3*SeedOffers},
		{"idle preheat beside a pull", Stream{Offers: SeedOffers, Idle: true, Background: true, Foreground: true, Active: 1}, 1, SeedPending/2 - SeedOffers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if q, l := Budget(tc.s); q != tc.quota || l != tc.limit {
				t.Errorf("Budget = %d, %d; want %d, %d", q, l, tc.quota, tc.limit)
			}
		})
	}
}

func TestOnceAndExpired(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !Once(false, t0, t0.Add(OfferExpiry-time.Millisecond)) {
		t.Error("a seed that grew just now does not send each piece once")
	}
	if Once(false, t0, t0.Add(OfferExpiry)) || Once(true, t0, t0) {
		t.Error("a seed that stopped growing, or is complete, still sends each piece once")
	}
	for _, tc := range []struct {
		after       time.Duration
		asked, idle bool
		want        bool
	}{
		{OfferExpiry, false, false, false},
		{OfferExpiry + 1, false, false, true},
		{OfferExpiry + 1, true, false, false}, // asked for: kept until sent
		{IdleOfferExpiry + 1, false, true, true},
		{IdleOfferExpiry, false, true, false},
		{time.Hour, true, true, false},
	} {
		if got := Expired(t0, t0.Add(tc.after), tc.asked, tc.idle); got != tc.want {
			t.Errorf("Expired after %v (asked %v, idle %v) = %v, want %v", tc.after, tc.asked, tc.idle, got, tc.want)
		}
	}
}

func TestOffer(t *testing.T) {
	t.Parallel()
	loads := []int{2, 1, 0, 1, 0}
	load := func(i int) int { return loads[i] }
	all := func(int) bool { return true }
	for _, tc := range []struct {
		name     string
		once     bool
		eligible func(int) bool
		want     int
	}{
		{"least sent or offered, lowest index on ties", false, all, 2},
		{"only what may be offered", false, func(i int) bool { return i != 2 }, 4},
		{"a piece already out may go again", false, func(i int) bool { return i < 2 }, 1},
		{"while the seed grows, none goes out twice", true, func(i int) bool { return i < 2 }, -1},
		{"while the seed grows, the new ones", true, all, 2},
		{"nothing eligible", false, func(int) bool { return false }, -1},
	} {
		if got := Offer(len(loads), tc.once, load, tc.eligible); got != tc.want {
			t.Errorf("%s: Offer = %d, want %d", tc.name, got, tc.want)
		}
	}
}
