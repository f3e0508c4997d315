package scheduler_test

import (
	"fmt"
	"time"

	"github.com/pouch-p2p/pouch/scheduler"
)

// The supernode drives the scheduler under its own lock and pushes each
// returned decision to the peer concerned.
func Example() {
	s := scheduler.New(scheduler.Config{MaxParents: 2})
	const task = scheduler.TaskID("sha256:4c3f...")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	s.SetTask(task, 8) // 8 pieces
	seed := s.Join(now, task, scheduler.PeerInfo{ID: "seed", Seed: true, UploadRate: 200e6}, 0)
	fmt.Println("seed:", seed.Parents, "back to source:", seed.BackToSource)

	for _, id := range []scheduler.PeerID{"a", "b", "c"} {
		d := s.Join(now, task, scheduler.PeerInfo{ID: id, UploadRate: 100e6}, 0)
		fmt.Println(id+":", d.Parents)
	}

	// Peers report progress in batches; a complete peer becomes a source.
	now = now.Add(time.Second)
	s.Report(now, task, "a", 8, true)
	s.Transfer(now, task, "b", "seed", 50e6, time.Second)

	// c got a piece from b that failed its SHA-256: b is never c's parent again. One
	// reporter is not enough to block b for everyone (a second one would be).
	d, verdict := s.Failure(now, task, "c", "b", scheduler.FailCorrupt)
	fmt.Println("c after corrupt b:", d.Parents, verdict)
	fmt.Println("also changed:", s.TakeChanged(task))
	// A report about a peer that was never c's parent is ignored.
	_, verdict = s.Failure(now, task, "c", "nobody", scheduler.FailCorrupt)
	fmt.Println("report about a stranger:", verdict)

	// The seed dies: its children get new parents.
	fmt.Println("changed by leave:", s.Leave(now, task, "seed"))
	fmt.Println("b:", s.Decision(task, "b").Parents)

	// The seed cannot reach the origin: everyone goes back to source.
	s.SourceFailed(task)
	fmt.Println("c back to source:", s.Decision(task, "c").BackToSource)

	st := s.TaskStats(task)
	fmt.Println("peers:", st.Peers, "sources:", st.Sources, "blocked:", st.Blocked)
	// Output:
	// seed: [] back to source: true
	// a: [seed]
	// b: [seed a]
	// c: [seed b]
	// c after corrupt b: [seed a] counted
	// also changed: []
	// report about a stranger: ignored
	// changed by leave: [b c]
	// b: [a c]
	// c back to source: true
	// peers: 3 sources: 1 blocked: 0
}
