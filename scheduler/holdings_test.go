package scheduler

import (
	"slices"
	"testing"
)

// covered lists the pieces the seed need not fetch.
func covered(h *Holdings) []int {
	var out []int
	for i := range h.Pieces() {
		if h.Covered(i) {
			out = append(out, i)
		}
	}
	return out
}

type announcement struct {
	peer    PeerID
	held    []int
	digests []string
	// what the call must answer
	adopted   []int
	conflicts int
}

func TestHoldings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		quorum  int
		trusted map[int]string // the seed's own digests, given before the announcements
		steps   []announcement
		forget  []PeerID
		covered []int
	}{
		{name: "one announcer adopts nothing", quorum: 2,
			steps:   []announcement{{peer: "a", held: []int{0, 1}, digests: []string{"d0", "d1"}}},
			covered: nil},
		{name: "two agreeing announcers adopt", quorum: 2,
			steps: []announcement{
				{peer: "a", held: []int{0, 1}, digests: []string{"d0", "d1"}},
				{peer: "b", held: []int{0}, digests: []string{"d0"}, adopted: []int{0}},
			},
			covered: []int{0}},
		{name: "the same peer twice is one announcer", quorum: 2,
			steps: []announcement{
				{peer: "a", held: []int{0}, digests: []string{"d0"}},
				{peer: "a", held: []int{0}, digests: []string{"d0"}},
			},
			covered: nil},
		{name: "a conflict is final", quorum: 2,
			steps: []announcement{
				{peer: "a", held: []int{1}, digests: []string{"d1"}},
				{peer: "liar", held: []int{1}, digests: []string{"bad"}, conflicts: 1},
				{peer: "b", held: []int{1}, digests: []string{"d1"}, conflicts: 1},
				{peer: "c", held: []int{1}, digests: []string{"d1"}, conflicts: 1},
			},
			covered: nil},
		{name: "a trusted digest settles announcements", quorum: 2, trusted: map[int]string{0: "d0", 1: "d1"},
			steps: []announcement{
				{peer: "a", held: []int{0, 1}, digests: []string{"d0", "bad"}, conflicts: 1},
			},
			covered: []int{0}},
		{name: "quorum 0 adopts nothing but counts trusted pieces", quorum: 0, trusted: map[int]string{2: "d2"},
			steps: []announcement{
				{peer: "a", held: []int{1, 2}, digests: []string{"d1", "d2"}},
				{peer: "b", held: []int{1, 2}, digests: []string{"d1", "d2"}},
			},
			covered: []int{2}},
		{name: "forgotten holders cover nothing", quorum: 2,
			steps: []announcement{
				{peer: "a", held: []int{0, 1}, digests: []string{"d0", "d1"}},
				{peer: "b", held: []int{0, 1}, digests: []string{"d0", "d1"}, adopted: []int{0, 1}},
				{peer: "c", held: []int{1}, digests: []string{"d1"}},
			},
			forget:  []PeerID{"a", "b"},
			covered: []int{1}},
		{name: "a complete announcer covers every trusted piece", quorum: 2, trusted: map[int]string{0: "d0", 1: "d1", 2: "d2", 3: "d3"},
			steps: []announcement{
				{peer: "a", held: []int{0, 1, 2, 3}, digests: []string{"d0", "d1", "d2", "d3"}},
			},
			covered: []int{0, 1, 2, 3}},
		{name: "a complete announcer with one wrong digest is not complete", quorum: 2, trusted: map[int]string{0: "d0", 1: "d1", 2: "d2", 3: "d3"},
			steps: []announcement{
				{peer: "a", held: []int{0, 1, 2, 3}, digests: []string{"d0", "d1", "d2", "bad"}, conflicts: 1},
			},
			covered: []int{0, 1, 2}},
		{name: "out of range and missing digests are ignored", quorum: 1,
			steps: []announcement{
				{peer: "a", held: []int{-1, 4, 0, 1}, digests: []string{"x", "y", "d0", ""}, adopted: []int{0}},
			},
			covered: []int{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := NewHoldings(4, c.quorum)
			for i, d := range c.trusted {
				h.Trust(i, d)
			}
			for _, a := range c.steps {
				adopted, conflicts := h.Announce(a.peer, a.held, a.digests)
				if !slices.Equal(adopted, a.adopted) || conflicts != a.conflicts {
					t.Errorf("Announce(%s, %v, %v) = %v, %d; want %v, %d", a.peer, a.held, a.digests, adopted, conflicts, a.adopted, a.conflicts)
				}
			}
			for _, p := range c.forget {
				h.Forget(p)
			}
			if got := covered(h); !slices.Equal(got, c.covered) {
				t.Errorf("covered %v, want %v", got, c.covered)
			}
		})
	}
}

// A claim settled by the seed's own hash counts the peers that announced the same digest, and
// takes completeness from a peer that announced another.
func TestHoldingsTrustSettlesClaims(t *testing.T) {
	t.Parallel()
	h := NewHoldings(2, 3)
	h.Announce("a", []int{0, 1}, []string{"d0", "d1"})
	h.Announce("b", []int{0}, []string{"d0"})
	if !h.Complete("a") || h.Complete("b") {
		t.Fatal("a peer that announced every piece, with no digest trusted yet, is complete")
	}
	if got := covered(h); got != nil {
		t.Fatalf("covered %v before any digest is trusted", got)
	}
	h.Trust(0, "d0")
	h.Trust(1, "other")
	if h.Complete("a") {
		t.Error("a announced a wrong digest for piece 1 and is still complete")
	}
	if got := covered(h); !slices.Equal(got, []int{0}) {
		t.Errorf("covered %v, want [0]", got)
	}
	h.Forget("a")
	if got := covered(h); !slices.Equal(got, []int{0}) {
		t.Errorf("without a, covered %v, want [0] (b holds it)", got)
	}
	h.Forget("b")
	if got := covered(h); got != nil {
		t.Errorf("without holders, covered %v", got)
	}
}

func TestHoldingsHoldsAndComplete(t *testing.T) {
	t.Parallel()
	h := NewHoldings(3, 2)
	h.Announce("a", []int{1}, []string{"d1"})
	if !h.Holds("a", 1) || h.Holds("a", 0) || h.Holds("b", 1) {
		t.Error("Holds does not follow the announcement")
	}
	h.SetComplete("b")
	if !h.Holds("b", 0) || !h.Complete("b") || h.Complete("a") {
		t.Error("a peer reported complete holds every piece")
	}
	h.Trust(2, "d2")
	if !h.Covered(2) || h.Covered(0) {
		t.Error("a complete peer covers the trusted pieces only")
	}
	h.Forget("b")
	if h.Covered(2) || h.Holds("b", 0) {
		t.Error("a forgotten peer still covers or holds")
	}
}

// The seed's own hash wins over an adopted digest: the peers that announced another one are
// named and forgotten, and those that announced the same one keep counting.
func TestHoldingsSeedHashWins(t *testing.T) {
	t.Parallel()
	h := NewHoldings(2, 1)
	if adopted, _ := h.Announce("liar", []int{0}, []string{"bad"}); !slices.Equal(adopted, []int{0}) {
		t.Fatalf("quorum 1: adopted %v, want [0]", adopted)
	}
	h.Announce("honest", []int{1}, []string{"d1"})
	if !h.Adopted(0) || !h.Covered(0) || !h.Covered(1) {
		t.Fatal("adopted pieces are covered by their announcers")
	}
	if liars := h.Trust(0, "d0"); !slices.Equal(liars, []PeerID{"liar"}) {
		t.Errorf("Trust named %v, want [liar]", liars)
	}
	if h.Covered(0) || h.Holds("liar", 0) || h.Adopted(0) || h.Trusted(0) != "d0" {
		t.Error("after the seed's hash, the liar still covers piece 0 or its digest stands")
	}
	if liars := h.Trust(1, "d1"); liars != nil || !h.Covered(1) || h.Adopted(1) {
		t.Errorf("the seed confirming an adopted digest: liars %v, covered %v", liars, h.Covered(1))
	}
}

func TestHoldingsUnreachableNeedsTwoChildren(t *testing.T) {
	t.Parallel()
	h := NewHoldings(1, 1)
	h.Announce("p", []int{0}, []string{"d0"})
	if h.Unreachable("p", "a") || h.Unreachable("p", "a") || !h.Covered(0) {
		t.Fatal("one child's reports dropped a holder")
	}
	if !h.Unreachable("p", "b") || h.Covered(0) {
		t.Fatal("two children's reports did not drop the holder")
	}
}
