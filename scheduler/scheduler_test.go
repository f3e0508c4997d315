package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// mustCheck fails the test if an invariant is broken.
func mustCheck(t *testing.T, s *Scheduler) {
	t.Helper()
	if err := checkInvariants(s); err != nil {
		t.Fatal(err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	d := Config{}.WithDefaults()
	if d.MaxParents != 4 || d.Candidates != 32 || d.MaxFailures != 2 || d.DefaultUpload != 100e6 || d.Seed != 1 || d.SwapRatio != 2 || d.SourceSamples != 8 {
		t.Fatalf("defaults: %+v", d)
	}
	if got := (Config{MaxParents: 7}).WithDefaults().MaxParents; got != 7 {
		t.Fatalf("WithDefaults overrode a set field: %d", got)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		bad  string // substring of the error, "" = valid
	}{
		{"zero", Config{}, ""},
		{"defaults", Config{}.WithDefaults(), ""},
		{"negative parents", Config{MaxParents: -1}, "maxParents"},
		{"negative candidates", Config{Candidates: -3}, "candidates"},
		{"negative failures", Config{MaxFailures: -1}, "maxFailures"},
		{"negative upload", Config{DefaultUpload: -1}, "defaultUpload"},
		{"swap ratio below 1", Config{SwapRatio: 0.5}, "swapRatio"},
		{"negative source samples", Config{SourceSamples: -1}, "sourceSamples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.bad == "" && err != nil {
				t.Fatal(err)
			}
			if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("err %v, want one about %s", err, tc.bad)
			}
			// New never fails and runs with a valid configuration.
			if err := New(tc.cfg).Config().Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestScoreRules: one case per term of the parent score.
func TestScoreRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
	}{
		{"free upload capacity wins", `
			config maxParents=1
			join seed seed up=1MB
			join slow up=1MB have=0
			join fast up=500MB
			report slow have=0
			report fast have=0
			tick 1s
			join c
			expect c parents=fast`},
		{"free capacity is divided over children", `
			config maxParents=1
			join seed seed up=100MB
			join a up=100MB
			join k1
			join k2
			# the seed (progress 1) with 3 children offers 25 MB/s to a new
			# child, an empty peer (progress 0.2) with none 20 MB/s...
			join k3
			expect k3 parents=seed
			# ...with 4 children the seed is no better than an empty peer.
			join c
			expect c lacks=seed`},
		{"more pieces is better", `
			config maxParents=2
			task pieces=100
			join seed seed up=1MB
			join a
			join b
			report a have=10
			report b have=90
			join c
			expect c parents=b,a`},
		{"complete peer beats downloading peer", `
			config maxParents=1
			task pieces=10
			join seed seed up=1MB
			join a
			join b
			report a have=9
			report b have=10 complete
			join c
			expect c parents=b`},
		{"failures penalise then drop", `
			config maxParents=2 maxFailures=3
			task pieces=10
			join seed seed up=1MB
			join a up=100MB
			join b up=100MB
			join c up=100MB
			expect c has=a
			fail c from=a timeout
			fail c from=a unreachable
			expect c has=a
			fail c from=a timeout
			expect c lacks=a n=2`},
		{"corrupt: one reporter blocks for itself, two agreeing for everyone", `
			config maxParents=3
			task pieces=10
			join seed seed
			join bad up=1GB
			join a
			join b
			expect a has=bad
			expect b has=bad
			fail a from=bad corrupt
			expect a lacks=bad
			expect b has=bad
			expect stats blocked=0
			# the same reporter again changes nothing
			fail a from=bad corrupt
			expect verdict ignored
			expect b has=bad
			fail b from=bad corrupt
			expect b lacks=bad
			expect stats blocked=1
			leave bad
			join bad up=1GB have=10
			expect stats sources=1
			join c
			expect c lacks=bad`},
		{"reports about parents never given are ignored", `
			config maxParents=1 corruptReporters=1
			task pieces=10
			join seed seed up=1GB
			join a
			join b
			join c
			expect b parents=seed
			expect c parents=seed
			fail b from=a corrupt
			expect verdict ignored
			fail c from=a unreachable
			fail c from=a unreachable
			fail c from=a unreachable
			expect verdict ignored
			expect stats blocked=0
			leave seed
			expect b parents=a
			expect c parents=a`},
		{"the seed is blocked by a report for the reporter only", `
			config maxParents=2 corruptReporters=1
			task pieces=10
			join seed seed
			join a
			join b
			join c
			expect a first=seed
			expect b has=seed
			fail a from=seed corrupt
			expect verdict counted
			fail b from=seed corrupt
			expect verdict counted
			expect a lacks=seed
			expect b lacks=seed
			expect c has=seed
			expect stats blocked=0
			join d
			expect d has=seed`},
		{"a dropped parent can be reported within the report window", `
			config maxParents=1 corruptReporters=1 reportWindow=10s
			task pieces=10
			join seed seed
			join a
			join b
			expect b parents=seed
			leave seed
			expect b parents=a
			tick 5s
			join seed seed
			fail b from=seed timeout
			expect verdict counted
			expect b parents=a
			fail b from=a corrupt
			expect verdict blocked
			expect b parents=seed
			expect stats blocked=1
			tick 11s
			fail b from=a unreachable
			expect verdict ignored`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if out, err := runScript(tc.script); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestIdleParents: a Report drops a lateral parent that is a downloading peer and uploaded
// nothing, to any child, for the child's idle window (2 s, or twice its slowest reported
// transfer), and does not take it back within the window. Every case starts from
// p4 parents=[seed p3 p2] (the seed its backbone; p3, p2 lateral).
func TestIdleParents(t *testing.T) {
	t.Parallel()
	const setup = `
		config maxParents=3
		task pieces=100
		join seed seed
		join p1
		join p2
		join p3
		join p4
		expect p4 parents=seed,p3,p2
	`
	for _, tc := range []struct {
		name   string
		script string
	}{
		{"idle lateral is dropped", `
			transfer p4 from=seed bytes=1MB dur=500ms
			tick 2s
			report p4 have=5
			expect p4 first=seed lacks=p3 lacks=p2`},
		{"a parent uploading to another child stays", `
			transfer p4 from=seed bytes=1MB dur=500ms
			tick 2s
			transfer p3 from=p2 bytes=1MB dur=500ms
			report p4 have=5
			expect p4 lacks=p3 has=p2`},
		{"bytes claimed from a peer that is not the claimer's parent do not count", `
			expect p1 parents=seed
			transfer p4 from=seed bytes=1MB dur=500ms
			tick 2s
			transfer p1 from=p2 bytes=1MB dur=500ms
			report p4 have=5
			expect p4 lacks=p3 lacks=p2`},
		{"not before the window", `
			transfer p4 from=seed bytes=1MB dur=500ms
			tick 1900ms
			report p4 have=5
			expect p4 parents=seed,p3,p2`},
		{"the window is twice the slowest transfer when longer", `
			transfer p4 from=seed bytes=1MB dur=3s
			tick 5s
			report p4 have=5
			expect p4 parents=seed,p3,p2
			tick 1s
			report p4 have=5
			expect p4 lacks=p3 lacks=p2`},
		{"a child that measured no transfer keeps its parents", `
			tick 10s
			report p4 have=5
			expect p4 parents=seed,p3,p2`},
		{"a source lateral stays", `
			report p3 have=100 complete
			transfer p4 from=seed bytes=1MB dur=500ms
			tick 2s
			report p4 have=5
			expect p4 has=p3 lacks=p2`},
		{"the backbone stays", `
			leave seed
			expect p4 parents=p1,p2,p3
			tick 1s
			transfer p4 from=p2 bytes=1MB dur=500ms
			tick 1s
			report p4 have=5
			expect p4 parents=p1,p2`},
		{"not taken back within the window, then may be", `
			transfer p4 from=seed bytes=1MB dur=500ms
			tick 2s
			report p4 have=5
			expect p4 lacks=p3 lacks=p2
			tick 1900ms
			report p4 have=5
			expect p4 lacks=p3 lacks=p2
			tick 100ms
			report p4 have=5
			expect p4 has=p3 has=p2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if out, err := runScript(setup + tc.script); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestIdleDropsCounted: every parent dropIdle takes out is counted (the supernode exports it as
// pouch_supernode_scheduler_events_total{event="idle_drop"}).
func TestIdleDropsCounted(t *testing.T) {
	t.Parallel()
	sc := newScript(Config{})
	for _, line := range []string{
		"config maxParents=3", "task pieces=100", "join seed seed", "join p1", "join p2", "join p3", "join p4",
		"expect p4 parents=seed,p3,p2", "transfer p4 from=seed bytes=1MB dur=500ms", "tick 2s", "report p4 have=5",
		"expect p4 lacks=p3 lacks=p2",
	} {
		if err := sc.exec(line); err != nil {
			t.Fatalf("%q: %v\n%s", line, err, sc.out.String())
		}
	}
	if got := sc.s.Stats().Counters.IdleDrops; got != 2 {
		t.Fatalf("IdleDrops = %d, want 2", got)
	}
}

// TestMeasuredThroughput: a parent much slower than the child's others is
// swapped on Report; a child whose own link is the bottleneck (all its
// parents equally slow) keeps its parents.
func TestMeasuredThroughput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		rates    []int64 // bytes/s measured from each lateral, in parent order
		wantSwap bool
	}{
		{"one parent far slower", []int64{50e6, 50e6, 1e5}, true},
		{"all equally slow", []int64{1e6, 1e6, 1e6}, false},
		{"all equally fast", []int64{80e6, 80e6, 80e6}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{MaxParents: 4, SwapRatio: 1.5})
			s.SetTask("t", 100)
			s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0)
			for i := range 12 {
				s.Join(t0, "t", PeerInfo{ID: PeerID(fmt.Sprint("p", i))}, 0)
			}
			// everyone reports the same progress, so only throughput differs
			for i := range 12 {
				s.Report(t0, "t", PeerID(fmt.Sprint("p", i)), 10, false)
			}
			d := s.Decision("t", "p11")
			if len(d.Parents) != 4 {
				t.Fatalf("parents %v", d.Parents)
			}
			// the seed is never traded for a downloading peer: measure the others
			var measured []PeerID
			for _, p := range d.Parents {
				if p != "seed" {
					measured = append(measured, p)
				}
			}
			measured = measured[len(measured)-len(tc.rates):]
			for i, r := range tc.rates {
				s.Transfer(t0, "t", "p11", measured[i], r*2, 2*time.Second)
			}
			slowest := measured[len(measured)-1]
			after := s.Report(t0.Add(time.Second), "t", "p11", 10, false)
			swapped := !slices.Contains(after.Parents, slowest)
			if swapped != tc.wantSwap {
				t.Fatalf("before %v after %v: swapped %v, want %v", d.Parents, after.Parents, swapped, tc.wantSwap)
			}
			mustCheck(t, s)
		})
	}
}

// TestBackbone: the first parent is the seed, a complete peer, or an
// earlier joiner; after leaves the backbone stays acyclic and reaches a
// source.
func TestBackbone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		n      int
		leaves []int // indexes of peers that leave, in order
	}{
		{"burst", 50, nil},
		{"backbone parents leave", 50, []int{0, 1, 2, 10, 20}},
		{"half leave", 60, []int{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{Candidates: 8})
			s.SetTask("t", 100)
			s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0)
			rank := map[PeerID]int{"seed": -1}
			for i := range tc.n {
				id := PeerID(fmt.Sprint("p", i))
				rank[id] = i
				d := s.Join(t0, "t", PeerInfo{ID: id}, 0)
				if len(d.Parents) == 0 || d.BackToSource {
					t.Fatalf("%s: %+v", id, d)
				}
				if first := d.Parents[0]; rank[first] >= i {
					t.Fatalf("%s: backbone %s joined later", id, first)
				}
			}
			mustCheck(t, s)
			for _, i := range tc.leaves {
				id := PeerID(fmt.Sprint("p", i))
				for _, c := range s.Leave(t0, "t", id) {
					d := s.Decision("t", c)
					if slices.Contains(d.Parents, id) {
						t.Fatalf("%s still has %s", c, id)
					}
				}
				mustCheck(t, s)
			}
		})
	}
}

// TestSeedLoad: at large N the seed is not everyone's parent; complete
// peers become sources and take children.
func TestSeedLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		n               int
		seedUp, peerUp  float64
		maxSeedChildren int
	}{
		{"equal uploads", 2000, 100e6, 100e6, 40},
		{"fast seed", 2000, 1e9, 100e6, 300},
		{"slow seed", 2000, 10e6, 100e6, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{})
			s.SetTask("t", 100)
			s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true, UploadRate: tc.seedUp}, 0)
			for i := range tc.n {
				s.Join(t0, "t", PeerInfo{ID: PeerID(fmt.Sprint("p", i)), UploadRate: tc.peerUp}, 0)
			}
			for i := range tc.n {
				s.Report(t0, "t", PeerID(fmt.Sprint("p", i)), 1, false)
			}
			st := s.TaskStats("t")
			t.Logf("seed children %d of %d peers, max children %d", st.SeedChildren, tc.n, st.MaxChildren)
			if st.SeedChildren > tc.maxSeedChildren || st.SeedChildren == 0 {
				t.Fatalf("seed has %d children (want 1..%d): %+v", st.SeedChildren, tc.maxSeedChildren, st)
			}
			if st.Edges < tc.n*3 {
				t.Fatalf("only %d edges for %d peers", st.Edges, tc.n)
			}
			mustCheck(t, s)
			// 10 peers complete: they become sources and get children.
			for i := range 10 {
				s.Report(t0, "t", PeerID(fmt.Sprint("p", i)), 100, true)
			}
			for i := 10; i < tc.n; i++ {
				s.Report(t0, "t", PeerID(fmt.Sprint("p", i)), 2, false)
			}
			mustCheck(t, s)
			tk := s.tasks["t"]
			for i := range 10 {
				if p := tk.peers[PeerID(fmt.Sprint("p", i))]; len(p.children) < 4 {
					t.Errorf("complete p%d has only %d children", i, len(p.children))
				}
			}
		})
	}
}

// TestBackToSource: each rule that sends a peer to the origin, and the
// cases that must not.
func TestBackToSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
	}{
		{"seed fetches from the origin", `
			join seed seed
			expect seed bts none`},
		{"source failed: every decision", `
			task pieces=5
			join seed seed
			join a
			join b
			report a have=5 complete
			sourcefailed
			expect seed bts
			expect a bts none
			expect b bts lacks=seed has=a
			join c
			expect c bts`},
		{"no seed, no pieces: the first peer only", `
			join a
			expect a bts
			join b
			expect b nobts first=a
			expect stats orphans=1 bts=1`},
		{"seed leaves, nobody complete: one orphan", `
			task pieces=10
			join seed seed
			join a
			join b
			join c
			report a have=3
			leave seed
			expect a bts
			expect b nobts
			expect c nobts
			expect stats orphans=1`},
		{"seed leaves with a complete peer: nobody", `
			task pieces=10
			join seed seed
			join a
			join b
			report a have=10 complete
			leave seed
			expect b nobts first=a
			expect stats orphans=0 bts=0`},
		{"complete peer never goes back to source", `
			task pieces=2
			join a have=2
			expect a nobts none`},
		{"all parents failed: back to source", `
			config maxParents=1 maxFailures=1
			join seed seed
			join a
			fail a from=seed timeout
			expect a bts none
			join seed2 seed
			expect a nobts first=seed2`},
		{"orphan re-attached on its own report", `
			config maxFailures=1
			task pieces=4
			join seed seed
			join a
			join b
			fail a from=seed timeout
			expect a bts
			report b have=4 complete
			expect a nobts first=b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if out, err := runScript(tc.script); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestReassign: Leave and Failure replace the parent at once.
func TestReassign(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		act  func(s *Scheduler) (changed []PeerID)
		gone PeerID
	}{
		{"leave", func(s *Scheduler) []PeerID { return s.Leave(t0, "t", "p0") }, "p0"},
		{"block", func(s *Scheduler) []PeerID { return s.Block(t0, "t", "p0") }, "p0"},
		{"corrupt", func(s *Scheduler) []PeerID {
			var kid PeerID
			for _, id := range []PeerID{"p1", "p2", "p3", "p4", "p5"} {
				if slices.Contains(s.Decision("t", id).Parents, "p0") {
					kid = id
					break
				}
			}
			var changed []PeerID
			for _, id := range []PeerID{"p1", "p2", "p3", "p4", "p5"} {
				if id == kid || !slices.Contains(s.Decision("t", id).Parents, "p0") {
					continue
				}
				// A second reporter: two agree, p0 is blocked for everyone.
				d, v := s.Failure(t0, "t", kid, "p0", FailCorrupt)
				if slices.Contains(d.Parents, "p0") || v != Counted {
					panic("first reporter kept the corrupt parent, or it was blocked for all at once")
				}
				if d, v = s.Failure(t0, "t", id, "p0", FailCorrupt); slices.Contains(d.Parents, "p0") || v != BlockedForAll {
					panic("second reporter did not block the parent for all")
				}
				changed = append(s.TakeChanged("t"), kid, id)
				break
			}
			return changed
		}, "p0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{MaxParents: 3})
			s.SetTask("t", 10)
			s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true, UploadRate: 1e6}, 0)
			for i := range 6 {
				s.Join(t0, "t", PeerInfo{ID: PeerID(fmt.Sprint("p", i))}, 0)
			}
			var had []PeerID
			for i := 1; i < 6; i++ {
				id := PeerID(fmt.Sprint("p", i))
				if slices.Contains(s.Decision("t", id).Parents, tc.gone) {
					had = append(had, id)
				}
			}
			if len(had) == 0 {
				t.Fatal("setup: nobody has p0")
			}
			changed := tc.act(s)
			slices.Sort(changed)
			for _, id := range had {
				if !slices.Contains(changed, id) {
					t.Errorf("%s had %s but is not reported changed (%v)", id, tc.gone, changed)
				}
				d := s.Decision("t", id)
				if slices.Contains(d.Parents, tc.gone) || len(d.Parents) != 3 {
					t.Errorf("%s: %v", id, d.Parents)
				}
			}
			mustCheck(t, s)
		})
	}
}

// TestReportSwapsAtMostOne: a stream of reports never changes more than one
// parent per call, and stops changing once the sets are good.
func TestReportSwapsAtMostOne(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	s.SetTask("t", 100)
	s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0)
	const n = 200
	for i := range n {
		s.Join(t0, "t", PeerInfo{ID: PeerID(fmt.Sprint("p", i))}, 0)
	}
	for i := range n {
		s.Report(t0, "t", PeerID(fmt.Sprint("p", i)), 1, false)
	}
	for i := range 5 {
		s.Report(t0, "t", PeerID(fmt.Sprint("p", i)), 100, true)
	}
	changes := 0
	for round := range 4 {
		changes = 0
		for i := 5; i < n; i++ {
			id := PeerID(fmt.Sprint("p", i))
			before := s.Decision("t", id).Parents
			after := s.Report(t0, "t", id, 1+round, false).Parents
			gone := 0
			for _, p := range before {
				if !slices.Contains(after, p) {
					gone++
				}
			}
			if gone > 1 {
				t.Fatalf("round %d %s: %v -> %v", round, id, before, after)
			}
			changes += gone
		}
		mustCheck(t, s)
	}
	if changes > n/10 {
		t.Fatalf("still %d swaps in the last round: churn", changes)
	}
}

func TestTakeChangedAndMisc(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	if d := s.Decision("nope", "x"); d.BackToSource || d.Parents != nil {
		t.Fatalf("unknown task: %+v", d)
	}
	if ch := s.Leave(t0, "nope", "x"); ch != nil {
		t.Fatal(ch)
	}
	s.Transfer(t0, "nope", "a", "b", 1, time.Second)
	if d, v := s.Failure(t0, "nope", "a", "b", FailTimeout); d.Parents != nil || v != Ignored {
		t.Fatal(d, v)
	}
	s.SetTask("t", 4)
	s.SetTask("t", 4) // idempotent
	s.Join(t0, "t", PeerInfo{ID: "a"}, 0)
	s.Join(t0, "t", PeerInfo{ID: "b"}, 0)
	if got := s.TakeChanged("t"); got != nil {
		t.Fatalf("nothing changed as a side effect, got %v", got)
	}
	s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0) // re-attaches orphan a
	if got := s.TakeChanged("t"); !slices.Equal(got, []PeerID{"a"}) {
		t.Fatalf("TakeChanged %v", got)
	}
	if got := s.TakeChanged("t"); got != nil {
		t.Fatalf("not drained: %v", got)
	}
	// Decision is pure.
	before := s.Stats()
	for range 3 {
		s.Decision("t", "a")
	}
	if after := s.Stats(); after != before {
		t.Fatalf("Decision changed state: %+v -> %+v", before, after)
	}
	// Report from an unknown peer registers it.
	if d := s.Report(t0, "t", "z", 0, false); len(d.Parents) == 0 {
		t.Fatalf("z: %+v", d)
	}
	// A re-join with the same role keeps the parents.
	p := s.Decision("t", "z").Parents
	if d := s.Join(t0, "t", PeerInfo{ID: "z"}, 1); !slices.Equal(d.Parents[:1], p[:1]) {
		t.Fatalf("re-join changed the backbone: %v -> %v", p, d.Parents)
	}
	SourceFailedAll := func() {
		s.SourceFailed("t")
		if got := s.TakeChanged("t"); len(got) != 4 {
			t.Fatalf("SourceFailed changed %v", got)
		}
	}
	SourceFailedAll()
	st := s.TaskStats("t")
	if st.Peers != 4 || st.BackToSource != 4 || st.Seeds != 1 || st.Sources != 0 {
		t.Fatalf("%+v", st)
	}
	s.RemoveTask("t")
	if s.Stats().Tasks != 0 || s.Decision("t", "a").Parents != nil {
		t.Fatal("task not removed")
	}
	mustCheck(t, s)
}

// TestLeaveEveryone drains a task and refills it (order compaction).
func TestLeaveEveryone(t *testing.T) {
	t.Parallel()
	s := New(Config{Candidates: 4})
	s.SetTask("t", 10)
	for round := range 3 {
		s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0)
		for i := range 300 {
			s.Join(t0, "t", PeerInfo{ID: PeerID(fmt.Sprint(round, "-", i))}, 0)
		}
		mustCheck(t, s)
		for i := range 300 {
			s.Leave(t0, "t", PeerID(fmt.Sprint(round, "-", i)))
			if i%50 == 0 {
				mustCheck(t, s)
			}
		}
		s.Leave(t0, "t", "seed")
		if st := s.TaskStats("t"); st.Peers != 0 || st.Edges != 0 {
			t.Fatalf("%+v", st)
		}
		mustCheck(t, s)
	}
}
