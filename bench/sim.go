package bench

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler"
	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// Simulate runs the workload of cfg as a discrete-event simulation with no sockets. It drives the
// real [scheduler] (the code the supernode runs) and models the rest:
//
//   - the origin serves OriginRate in total; the seed fetches every piece from it in order and
//     may serve a piece as soon as it has it (its digest is then known to every peer);
//   - a connection parent→child carries one piece at a time, with [picker.Pipeline] more
//     requests queued behind it (as the dfdaemon, which asks for the next piece once one starts
//     arriving); its rate is min(parent upload ÷ the parent's active connections, child download ÷
//     the child's active connections), recomputed whenever either count changes;
//   - a peer picks pieces with the dfdaemon's [picker.Pick]: from any parent but the seed the
//     first usable piece in the [picker.Window] pieces after its read cursor, otherwise the rarest
//     among its parents' pieces, ties at random; a piece is requested from one parent at a time;
//   - every peer syncs about every [snapi.SyncInterval] (random phase): Transfer for each parent that
//     sent bytes, then Report, and applies the decision (new parents connect at once, dropped
//     ones finish their queued requests); it reports at once when it completes;
//   - the seed super-seeds with the seed's own policy ([picker.Offer], [picker.Budget]): it shows
//     each child only [picker.SeedOffers] pieces at a time, those it has sent or offered least
//     often (the child's avail counts still include the seed's
//     pieces, as the offers are all a child learns of the seed but the rarest-first counts
//     come from the other parents);
//   - a parent asked for nothing more that holds a piece waiting at another parent takes it over
//     after [picker.MoveAfter] ([picker.Move]: the other is told to drop it);
//   - a peer told BackToSource pulls from the origin like the seed.
//
// It also accounts where the simulated capacity went (SimAccount, bench/simacct.go): each node's
// download and each uploader's upload by state, the peers' states sampled every 0.25 s, and the
// hops of every copy; the bookkeeping only observes.
//
// Not modelled: latency (the cancel's round trip among it), failures, and the seed's timing
// (offers refreshed every 250 ms and expiring, each piece once while the seed grows:
// picker.Once, picker.Expired).
func Simulate(cfg Config) Result {
	cfg = cfg.WithDefaults()
	if cfg.PieceSize == 0 {
		cfg.PieceSize = piece.SizeFor(cfg.Size)
	}
	start := time.Now()
	s := newSim(cfg)
	s.run()
	res := cfg.header("sim")
	res.Timing = summarize(s.results(), cfg.TMin(), s.makespan, int64(s.origin.sent), cfg.Size)
	res.BytesFromPeers, res.BytesFromSeed, res.BytesFromOrigin = int64(s.fromPeers), int64(s.seed.sent), int64(s.fromOriginDirect)
	res.SimEvents = s.events
	res.SimAccount = s.account()
	res.IdleDrops = s.sched.Stats().Counters.IdleDrops
	if cfg.Baseline {
		// Every node pulling from the origin needs no simulation: the origin's rate is shared
		// equally, so each node of a wave finishes at max(F/d, n_w·F/r_o), the baseline bound.
		// (Simulating it would cost O(N) per piece, as every transfer changes every node's share.)
		var nodes []NodeResult
		var makespan float64
		for w, wv := range cfg.waves() {
			for i := wv.first; i < wv.first+wv.n; i++ {
				nodes = append(nodes, NodeResult{Node: i, Wave: w, Seconds: wv.tBase, DigestOK: true})
			}
			makespan += wv.tBase
		}
		bt := summarize(nodes, cfg.baselineTMin(), makespan, int64(cfg.Nodes)*cfg.Size, cfg.Size)
		res.Baseline = &BaselineResult{Timing: bt, Speedup: speedup(res.Timing, bt)}
	}
	res.SimWallSeconds = time.Since(start).Seconds()
	return res
}

type simPeer struct {
	idx            int
	sid            scheduler.PeerID
	up, down       float64
	seed, isOrigin bool
	have           []bool
	nHave          int
	avail          []int32 // how many connected parents hold each piece
	inflight       []bool
	parents        []*simConn
	children       []*simConn
	nUp, nDown     int // active connections
	// SimAccount's bookkeeping: the sums of its active connections' rates, and when it was
	// last accounted.
	upRate, downRate, acctT float64
	joined, done            bool
	wave                    int
	start, end              float64
	sent                    float64
	originConn              bool
}

type simConn struct {
	p, c        *simPeer
	queue       []int
	asked       []float64 // when each piece of queue was asked for
	rem, rate   float64
	last        float64
	ver         int
	retired     bool
	closed      bool
	bytes, busy float64 // since the last sync
	// Super-seeding, on a connection from the seed: the pieces offered to the child and not yet
	// sent, and every piece ever offered to it.
	offers map[int]bool
	told   []bool
}

type simEvent struct {
	t    float64
	kind int
	conn *simConn
	peer *simPeer
	ver  int
	seq  int64
}

const (
	evFinish = iota // the head piece of a connection arrived
	evSync          // a peer syncs with the supernode
	evSample        // SimAccount samples the peers' states
)

type eventQueue []simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].t != q[j].t {
		return q[i].t < q[j].t
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	cfg              Config
	sched            *scheduler.Scheduler
	task             scheduler.TaskID
	pieces           int
	rng              *rand.Rand
	q                eventQueue
	seq              int64
	now              float64
	epoch            time.Time
	origin, seed     *simPeer
	peers            []*simPeer
	byID             map[scheduler.PeerID]*simPeer
	remaining        int // peers of the current wave not done
	waveIdx          int
	waves            []wave
	makespan         float64
	events           int64
	fromPeers        float64
	fromOriginDirect float64
	seedSent         []int // times the seed sent each piece
	seedOffered      []int // open offers of each piece
	seedPending      int   // sum of seedOffered
	ac               acct
}

func newSim(cfg Config) *sim {
	s := &sim{cfg: cfg, sched: scheduler.New(scheduler.Config{Seed: cfg.Seed}), task: "sim",
		pieces: piece.Count(cfg.Size, cfg.PieceSize), rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		epoch: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), byID: map[scheduler.PeerID]*simPeer{}, waves: cfg.waves()}
	s.seedSent, s.seedOffered = make([]int, s.pieces), make([]int, s.pieces)
	mk := func(idx int, id string, up, down float64) *simPeer {
		p := &simPeer{idx: idx, sid: scheduler.PeerID(id), up: up, down: down,
			have: make([]bool, s.pieces), avail: make([]int32, s.pieces), inflight: make([]bool, s.pieces)}
		s.byID[p.sid] = p
		return p
	}
	s.origin = mk(-2, "origin", float64(cfg.OriginRate), math.Inf(1))
	s.origin.isOrigin = true
	for i := range s.pieces {
		s.origin.have[i] = true
	}
	s.origin.nHave = s.pieces
	s.seed = mk(-1, "seed", float64(cfg.SeedRate), math.Inf(1))
	s.seed.seed = true
	for i := range cfg.Nodes {
		s.peers = append(s.peers, mk(i, fmt.Sprintf("peer%d", i), float64(cfg.UploadRate), float64(cfg.DownloadRate)))
	}
	s.acctInit()
	return s
}

func (s *sim) at(t float64) time.Time { return s.epoch.Add(time.Duration(t * float64(time.Second))) }

func (s *sim) push(e simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *sim) pieceLen(i int) float64 {
	_, n := piece.Bounds(i, s.cfg.Size, s.cfg.PieceSize)
	return float64(n)
}

func (s *sim) run() {
	s.sched.SetTask(s.task, s.pieces)
	s.sched.Join(s.at(0), s.task, scheduler.PeerInfo{ID: s.seed.sid, UploadRate: s.seed.up, Seed: true}, 0)
	s.touch(s.seed)
	s.seed.joined = true
	s.connect(s.origin, s.seed)
	s.pump(s.seed)
	s.startWave()
	s.push(simEvent{t: sampleEvery, kind: evSample})
	limit := 1000 * s.cfg.TMin() * float64(len(s.waves))
	for s.q.Len() > 0 && s.waveIdx < len(s.waves) {
		e := heap.Pop(&s.q).(simEvent)
		if e.t > limit {
			break
		}
		s.now = e.t
		switch e.kind {
		case evFinish:
			if e.ver != e.conn.ver || e.conn.closed {
				continue
			}
			s.events++
			s.finish(e.conn)
		case evSync:
			if e.peer.done {
				continue
			}
			s.events++
			s.sync(e.peer)
			s.push(simEvent{t: s.now + snapi.SyncInterval.Seconds(), kind: evSync, peer: e.peer})
		case evSample:
			s.sample()
			s.push(simEvent{t: s.now + sampleEvery, kind: evSample})
		}
	}
}

func (s *sim) startWave() {
	w := s.waves[s.waveIdx]
	s.remaining = w.n
	for _, p := range s.peers[w.first : w.first+w.n] {
		s.touch(p)
		p.joined, p.wave, p.start = true, s.waveIdx, s.now
		d := s.sched.Join(s.at(s.now), s.task, scheduler.PeerInfo{ID: p.sid, UploadRate: p.up}, 0)
		s.apply(p, d)
		s.push(simEvent{t: s.now + s.rng.Float64()*snapi.SyncInterval.Seconds(), kind: evSync, peer: p})
	}
}

// apply makes a peer's connections match a decision.
func (s *sim) apply(p *simPeer, d scheduler.Decision) {
	if p.done {
		return
	}
	s.touch(p)
	want := map[*simPeer]bool{}
	var order []*simPeer
	add := func(q *simPeer) {
		if q != nil && q != p && !want[q] {
			want[q] = true
			order = append(order, q)
		}
	}
	for _, id := range d.Parents {
		add(s.byID[id])
	}
	if d.BackToSource && !p.seed {
		add(s.origin)
		p.originConn = true
	}
	have := map[*simPeer]bool{}
	for _, c := range p.parents {
		c.retired = !want[c.p]
		have[c.p] = true
	}
	for _, q := range order {
		if !have[q] {
			s.connect(q, p)
		}
	}
	s.closeIdle(p)
	s.pump(p)
}

func (s *sim) connect(parent, child *simPeer) *simConn {
	c := &simConn{p: parent, c: child, last: s.now}
	parent.children = append(parent.children, c)
	child.parents = append(child.parents, c)
	for i, h := range parent.have {
		if h {
			child.avail[i]++
		}
	}
	return c
}

// closeIdle drops retired connections with nothing queued.
func (s *sim) closeIdle(p *simPeer) {
	s.touch(p)
	keep := p.parents[:0]
	for _, c := range p.parents {
		if c.retired && len(c.queue) == 0 || p.done && len(c.queue) == 0 {
			c.closed = true
			for i, h := range c.p.have {
				if h {
					p.avail[i]--
				}
			}
			ch := c.p.children
			for k, x := range ch {
				if x == c {
					ch[k] = ch[len(ch)-1]
					c.p.children = ch[:len(ch)-1]
					break
				}
			}
			continue
		}
		keep = append(keep, c)
	}
	clear(p.parents[len(keep):])
	p.parents = keep
}

// pump fills the request pipelines of a peer's parents.
func (s *sim) pump(p *simPeer) {
	if p.done {
		return
	}
	for again := true; again; {
		again = false // a move frees a slot at a parent that may have been pumped already
		for _, c := range p.parents {
			if !c.retired && s.fill(p, c) {
				again = true
			}
		}
	}
}

// fill fills one connection's pipeline, and says whether it moved a request from another.
func (s *sim) fill(p *simPeer, c *simConn) (moved bool) {
	for len(c.queue) <= picker.Pipeline {
		i := s.pick(p, c.p, c)
		if i < 0 && len(c.queue) <= 1 {
			i = s.move(p, c)
			moved = moved || i >= 0
		}
		if i < 0 {
			break
		}
		p.inflight[i] = true
		c.queue = append(c.queue, i)
		c.asked = append(c.asked, s.now)
		if len(c.queue) == 1 {
			c.rem, c.last = s.pieceLen(i), s.now
			s.touch(c.p)
			s.touch(p)
			c.p.nUp++
			p.nDown++
			s.reschedule(c.p, p)
		}
	}
	return moved
}

// move takes from another of p's parents a request it has not started (picker.Move; every
// simulated parent can be told to drop it, as a dfdaemon speaking /pouch/pieces/1.2.0) for c,
// which was asked for nothing else, or returns -1. The cancel's round trip is not modelled.
func (s *sim) move(p *simPeer, c *simConn) int {
	if c.p.isOrigin {
		return -1
	}
	var waiting []picker.Waiting
	for _, d := range p.parents {
		for k := 1; d != c && k < len(d.queue); k++ {
			waiting = append(waiting, picker.Waiting{Piece: d.queue[k], Age: time.Duration((s.now - d.asked[k]) * float64(time.Second)), Cancel: true})
		}
	}
	i := picker.Move(waiting, func(i int) bool { return c.p.have[i] && (c.offers == nil || c.offers[i]) })
	if i < 0 {
		return -1
	}
	for _, d := range p.parents {
		for k := 1; d != c && k < len(d.queue); k++ {
			if d.queue[k] == i {
				d.queue = append(d.queue[:k], d.queue[k+1:]...)
				d.asked = append(d.asked[:k], d.asked[k+1:]...)
				return i
			}
		}
	}
	return i
}

func (s *sim) usable(p, q *simPeer, i int) bool {
	return !p.inflight[i] && !p.have[i] && q.have[i]
}

// offer refreshes the seed's offers to the child of c (internal/peer/announce.go): an offer the
// child no longer needs is withdrawn (the daemon lets it expire after picker.OfferExpiry), and
// the child is offered what picker.Offer chooses, within picker.Budget.
func (s *sim) offer(c *simConn) {
	if c.offers == nil {
		c.offers, c.told = map[int]bool{}, make([]bool, s.pieces)
	}
	for i := range c.offers {
		if c.c.have[i] {
			delete(c.offers, i)
			s.seedOffered[i]--
			s.seedPending--
		}
	}
	quota, limit := picker.Budget(picker.Stream{Offers: picker.SeedOffers})
	// Each piece once while the seed grows (picker.Once) is not applied: the simulated seed
	// offers only when a child's connection pumps (a piece arrived, or its sync), not every
	// 250 ms as the daemon does, so a child refused an offer would wait up to a sync interval.
	// Applied anyway it made max/T_min 2.03 → 2.16 at N = 100 and 2.47 → 2.63 at N = 1,000
	// (means of seeds 1–5; docs/benchmarks.md), most likely for that reason.
	load := func(i int) int { return s.seedSent[i] + s.seedOffered[i] }
	eligible := func(i int) bool { return s.seed.have[i] && !c.told[i] }
	for len(c.offers) < quota && s.seedPending < limit {
		best := picker.Offer(s.pieces, false, load, eligible)
		if best < 0 {
			return
		}
		c.offers[best], c.told[best] = true, true
		s.seedOffered[best]++
		s.seedPending++
	}
}

// simChild is a peer as the picker sees it for one parent: usable is the dfdaemon's test (the
// parent holds the piece, the peer lacks it and has not asked another parent for it); from the
// seed, only what it offered.
type simChild struct {
	s      *sim
	p, q   *simPeer
	offers map[int]bool // the seed's open offers to p; nil for any other parent
}

func (v simChild) Avail(i int) int { return int(v.p.avail[i]) }
func (v simChild) Usable(i int) bool {
	return (v.offers == nil || v.offers[i]) && v.s.usable(v.p, v.q, i)
}

// pick is the dfdaemon's piece choice (picker.Pick); a peer pulling from the origin goes in
// order, as the origin streams.
func (s *sim) pick(p, q *simPeer, c *simConn) int {
	if q.isOrigin {
		for i := range s.pieces {
			if s.usable(p, q, i) {
				return i
			}
		}
		return -1
	}
	ch := simChild{s: s, p: p, q: q}
	if q.seed {
		s.offer(c)
		ch.offers = c.offers
	}
	cur := -1
	for i := range s.pieces {
		if !p.have[i] {
			cur = i
			break
		}
	}
	return picker.Pick(picker.Choice{Pieces: s.pieces, Cursor: cur, FromSeed: q.seed, Start: s.rng.IntN}, ch)
}

// reschedule recomputes the rates of every active connection of parent (upload side) and of
// child (download side) after their counts changed.
func (s *sim) reschedule(parent, child *simPeer) {
	for _, c := range parent.children {
		s.rerate(c)
	}
	for _, c := range child.parents {
		if c.p != parent {
			s.rerate(c)
		}
	}
}

func (s *sim) rerate(c *simConn) {
	if len(c.queue) == 0 {
		return
	}
	if c.rate > 0 {
		dt := s.now - c.last
		c.rem -= c.rate * dt
		c.bytes += c.rate * dt
		c.busy += dt
	}
	c.last = s.now
	r := math.Min(c.p.up/float64(c.p.nUp), c.c.down/float64(c.c.nDown))
	if r == c.rate && c.ver > 0 {
		return
	}
	s.setRate(c, r)
	c.ver++
	s.push(simEvent{t: s.now + math.Max(c.rem, 0)/r, kind: evFinish, conn: c, ver: c.ver})
}

// finish delivers the head piece of c.
func (s *sim) finish(c *simConn) {
	dt := s.now - c.last
	c.bytes += c.rem
	c.busy += dt
	c.last = s.now
	i := c.queue[0]
	c.queue, c.asked = c.queue[1:], c.asked[1:]
	p, q := c.c, c.p
	s.touch(p)
	s.touch(q)
	n := s.pieceLen(i)
	q.sent += n
	if q.seed {
		s.seedSent[i]++
		if c.offers[i] {
			delete(c.offers, i)
			s.seedOffered[i]--
			s.seedPending--
		}
	}
	switch {
	case q.isOrigin && !p.seed:
		s.fromOriginDirect += n
	case !q.isOrigin && !q.seed:
		s.fromPeers += n
	}
	p.inflight[i] = false
	if !p.have[i] {
		s.delivered(p, q, i)
		p.have[i] = true
		p.nHave++
		for _, k := range p.children {
			k.c.avail[i]++
		}
	}
	if len(c.queue) > 0 {
		c.rem = s.pieceLen(c.queue[0])
		s.setRate(c, 0)
		s.rerate(c)
	} else {
		s.setRate(c, 0)
		q.nUp--
		p.nDown--
		s.reschedule(q, p)
	}
	if p.nHave == s.pieces {
		s.lastPiece(p, i)
		s.complete(p)
	} else {
		s.pump(p)
		s.closeIdle(p)
	}
	// Children of p may now request piece i. (A peer's piece is always one the seed has, so
	// its digest is known: only the seed and peers sent back to source fetch from the origin.)
	for _, k := range p.children {
		s.pump(k.c)
	}
}

func (s *sim) complete(p *simPeer) {
	s.touch(p)
	p.done, p.end = true, s.now
	s.closeIdle(p)
	s.syncTransfers(p)
	s.sched.Report(s.at(s.now), s.task, p.sid, p.nHave, true)
	// Peers whose parent sets changed because p became a source learn it at their next sync.
	if p.seed {
		return
	}
	s.remaining--
	if s.remaining == 0 {
		s.makespan = s.now
		s.waveIdx++
		if s.waveIdx < len(s.waves) {
			s.startWave()
		}
	}
}

func (s *sim) syncTransfers(p *simPeer) {
	for _, c := range p.parents {
		if len(c.queue) > 0 && c.rate > 0 {
			dt := s.now - c.last
			c.rem -= c.rate * dt
			c.bytes += c.rate * dt
			c.busy += dt
			c.last = s.now
		}
		if c.bytes > 0 && !c.p.isOrigin {
			s.sched.Transfer(s.at(s.now), s.task, p.sid, c.p.sid, int64(c.bytes), time.Duration(c.busy*float64(time.Second)))
		}
		c.bytes, c.busy = 0, 0
	}
}

func (s *sim) sync(p *simPeer) {
	s.syncTransfers(p)
	d := s.sched.Report(s.at(s.now), s.task, p.sid, p.nHave, false)
	s.apply(p, d)
}

func (s *sim) results() []NodeResult {
	out := make([]NodeResult, len(s.peers))
	for i, p := range s.peers {
		out[i] = NodeResult{Node: i, Wave: p.wave, Seconds: p.end - p.start, DigestOK: p.done}
		if !p.done {
			out[i].Seconds = s.now - p.start
			out[i].Error = fmt.Sprintf("did not complete: %d of %d pieces", p.nHave, s.pieces)
		}
	}
	return out
}
