package bench

import (
	"fmt"
	"io"
	"slices"
)

// SimAccount is where a simulation's time went, in node-seconds summed over the nodes (each
// from its start to its last piece for the download side, every peer and the seed until the
// last node of its wave finished for the upload side), split at the moment the seed had sent
// every piece at least once (phase 0 before, phase 1 after).
type SimAccount struct {
	// SeedAllSent is when the seed had sent every piece at least once (seconds from the start;
	// 0 if it never did), and HeldAtSeedAll the nodes' pieces then (min, median, max).
	SeedAllSent   float64 `json:"seed_all_sent_seconds"`
	HeldAtSeedAll [3]int  `json:"held_at_seed_all"`
	// Down is the nodes' download side, by phase.
	Down [2]SimDown `json:"down"`
	// Up is the peers' upload side (not the seed), by phase; Seed the seed's.
	Up   [2]SimUp `json:"up"`
	Seed [2]SimUp `json:"seed"`
	// Samples counts what the peers were doing at regular instants (sampleEvery), by phase.
	Samples [2]SimSamples `json:"samples"`
	// Hops: the mean hop count of every copy (the seed's own copy is 0), the largest, and the
	// mean hop count of each node's last piece.
	MeanHops, LastPieceHops float64
	MaxHops                 int
	// LastPieceAge is, per node, how long after the seed first sent its last piece the node
	// got it (mean and max).
	LastPieceAge [2]float64 `json:"last_piece_age_seconds"`
	// LastPieceFirstSent is when the seed first sent the nodes' last pieces (mean, max).
	LastPieceFirstSent [2]float64 `json:"last_piece_first_sent_seconds"`
}

// SimDown is the nodes' download capacity (cap × time) and what became of it.
type SimDown struct {
	Capacity float64 `json:"capacity_node_seconds"`
	Received float64 `json:"received_node_seconds"` // bytes received ÷ cap
	// NoParent: no parent at all; Nothing: parents, but none holds (or, the seed, offered) a
	// piece the node lacks and has not asked another for; ParentBound: pieces arriving, below
	// the cap because a parent's upload share (its upload ÷ its active children) is less than
	// the node's download share.
	NoParent, Nothing, ParentBound float64
	// Active is the mean number of parents sending while any sends (time-weighted).
	ActiveSeconds, ActiveLinks float64
}

// SimUp is an uploader's capacity and what became of it.
type SimUp struct {
	Capacity float64 `json:"capacity_node_seconds"`
	Sent     float64 `json:"sent_node_seconds"`
	// IdleDownloading / IdleComplete: no child asks it for anything while it is still
	// downloading / once it holds everything; ChildBound: sending, but below its upload because
	// some children take less than its share (they are at their own download share), the
	// simulator's min-of-shares model leaving the rest unused.
	IdleDownloading, IdleComplete, ChildBound float64
}

// SimSamples are counts of peers (or requests) in a state, summed over the samples.
type SimSamples struct {
	Samples int `json:"samples"`
	// Idle uploaders that are still downloading, by why: no child at all; every child holds
	// every piece it holds; some child lacks one, but has asked another parent for all those.
	IdleNoChild, IdleNothingNew, IdleAskedElsewhere int
	// Downloading nodes, and those with nothing to ask (no connection active).
	Downloading, NothingToAsk int
	// NothingButAhead: nothing to ask, while some peer in the task that is not its parent
	// holds a piece it lacks.
	NothingButAhead int
	// Waiting requests (queued behind the piece a connection carries), and those whose piece
	// another parent of the node holds while that parent uploads nothing.
	Waiting, Stealable int
}

// sampleEvery is SimAccount's sampling period in simulated seconds.
const sampleEvery = 0.25

// sample classifies the peers' states now.
func (s *sim) sample() {
	sm := &s.ac.a.Samples[s.ac.phase]
	sm.Samples++
	maxHave := 0
	for _, p := range s.peers {
		if p.joined {
			maxHave = max(maxHave, p.nHave)
		}
	}
	for _, p := range s.peers {
		if !p.joined || p.done {
			continue
		}
		sm.Downloading++
		if p.nDown == 0 && !p.originConn {
			sm.NothingToAsk++
			if maxHave > p.nHave {
				sm.NothingButAhead++
			}
		}
		for _, c := range p.parents {
			for _, i := range c.queue[min(1, len(c.queue)):] {
				sm.Waiting++
				for _, o := range p.parents {
					if o != c && !o.retired && o.p.nUp == 0 && o.p.have[i] && !o.p.seed {
						sm.Stealable++
						break
					}
				}
			}
		}
		if p.nUp > 0 {
			continue
		}
		kids := 0
		lacks, free := false, false
		for _, k := range p.children {
			if k.c.done || k.closed {
				continue
			}
			kids++
			for i, h := range p.have {
				if h && !k.c.have[i] {
					lacks = true
					if !k.c.inflight[i] {
						free = true
					}
				}
			}
		}
		switch {
		case kids == 0:
			sm.IdleNoChild++
		case !lacks:
			sm.IdleNothingNew++
		case !free:
			sm.IdleAskedElsewhere++
		}
	}
}

// acct is the simulator's bookkeeping for SimAccount.
type acct struct {
	a      SimAccount
	phase  int
	depth  [][]int8 // per peer index + 2 (origin, seed, nodes), per piece
	first  []float64
	unsent int // pieces the seed has not sent yet
	ages   []float64
	firsts []float64
	hops   []float64
	nCopy  float64
	sumHop float64
}

func (s *sim) acctInit() {
	s.ac.depth = make([][]int8, len(s.peers)+2)
	for i := range s.ac.depth {
		s.ac.depth[i] = make([]int8, s.pieces)
	}
	for i := range s.pieces {
		s.ac.depth[0][i] = -1 // the origin: the seed's copies are hop 0
	}
	s.ac.first = make([]float64, s.pieces)
	s.ac.unsent = s.pieces
}

// touch accounts for p's state since its last touch; call it before anything that changes
// p's rates, active connections, parents or completion.
func (s *sim) touch(p *simPeer) {
	dt := s.now - p.acctT
	p.acctT = s.now
	if dt <= 0 || p.isOrigin || !p.joined {
		return
	}
	ph := s.ac.phase
	if p.seed {
		u := &s.ac.a.Seed[ph]
		s.upAcct(u, p, dt)
		return
	}
	if !p.done {
		d := &s.ac.a.Down[ph]
		d.Capacity += p.down * dt
		d.Received += p.downRate * dt
		switch {
		case p.nDown > 0:
			d.ParentBound += (p.down - p.downRate) * dt
			d.ActiveSeconds += dt
			d.ActiveLinks += float64(p.nDown) * dt
		case s.liveParents(p) > 0:
			d.Nothing += p.down * dt
		default:
			d.NoParent += p.down * dt
		}
	}
	s.upAcct(&s.ac.a.Up[ph], p, dt)
}

func (s *sim) upAcct(u *SimUp, p *simPeer, dt float64) {
	u.Capacity += p.up * dt
	u.Sent += p.upRate * dt
	switch {
	case p.nUp > 0:
		u.ChildBound += (p.up - p.upRate) * dt
	case p.done:
		u.IdleComplete += p.up * dt
	default:
		u.IdleDownloading += p.up * dt
	}
}

func (s *sim) liveParents(p *simPeer) int {
	n := 0
	for _, c := range p.parents {
		if !c.retired {
			n++
		}
	}
	return n
}

// setRate changes c's rate, keeping its ends' sums.
func (s *sim) setRate(c *simConn, r float64) {
	if r == c.rate {
		return
	}
	s.touch(c.p)
	s.touch(c.c)
	c.p.upRate += r - c.rate
	c.c.downRate += r - c.rate
	c.rate = r
}

// delivered records piece i's arrival at p from q.
func (s *sim) delivered(p, q *simPeer, i int) {
	h := s.ac.depth[q.idx+2][i] + 1
	s.ac.depth[p.idx+2][i] = h
	if q.seed && s.ac.first[i] == 0 {
		s.ac.first[i] = s.now
		s.ac.unsent--
		if s.ac.unsent == 0 {
			s.acctAll()
			s.ac.phase = 1
			s.ac.a.SeedAllSent = s.now
			var held []int
			for _, x := range s.peers {
				if x.joined {
					held = append(held, x.nHave)
				}
			}
			if len(held) > 0 {
				slices.Sort(held)
				s.ac.a.HeldAtSeedAll = [3]int{held[0], held[len(held)/2], held[len(held)-1]}
			}
		}
	}
	if !p.seed && !p.isOrigin {
		s.ac.nCopy++
		s.ac.sumHop += float64(h)
		s.ac.a.MaxHops = max(s.ac.a.MaxHops, int(h))
	}
}

// lastPiece records the piece that completed p.
func (s *sim) lastPiece(p *simPeer, i int) {
	if p.seed {
		return
	}
	s.ac.hops = append(s.ac.hops, float64(s.ac.depth[p.idx+2][i]))
	s.ac.ages = append(s.ac.ages, s.now-s.ac.first[i])
	s.ac.firsts = append(s.ac.firsts, s.ac.first[i])
}

func (s *sim) acctAll() {
	s.touch(s.seed)
	for _, p := range s.peers {
		s.touch(p)
	}
}

func meanMax(xs []float64) [2]float64 {
	var m [2]float64
	for _, x := range xs {
		m[0] += x
		m[1] = max(m[1], x)
	}
	if len(xs) > 0 {
		m[0] /= float64(len(xs))
	}
	return m
}

func (s *sim) account() *SimAccount {
	s.acctAll()
	a := s.ac.a
	if s.ac.nCopy > 0 {
		a.MeanHops = s.ac.sumHop / s.ac.nCopy
	}
	a.LastPieceHops = meanMax(s.ac.hops)[0]
	a.LastPieceAge = meanMax(s.ac.ages)
	a.LastPieceFirstSent = meanMax(s.ac.firsts)
	return &a
}

// writeSimAccount prints a SimAccount as fractions of the capacities, in seconds per node.
func writeSimAccount(w io.Writer, a *SimAccount, nodes int, down float64) {
	n := float64(max(nodes, 1))
	fmt.Fprintf(w, "seed sent every piece once at %.2fs; nodes then held %d / %d / %d pieces (min / median / max)\n",
		a.SeedAllSent, a.HeldAtSeedAll[0], a.HeldAtSeedAll[1], a.HeldAtSeedAll[2])
	for ph, name := range []string{"before", "after"} {
		d, u, sd := a.Down[ph], a.Up[ph], a.Seed[ph]
		if d.Capacity == 0 && u.Capacity == 0 {
			continue
		}
		f := func(x, of float64) float64 {
			if of == 0 {
				return 0
			}
			return 100 * x / of
		}
		links := 0.0
		if d.ActiveSeconds > 0 {
			links = d.ActiveLinks / d.ActiveSeconds
		}
		fmt.Fprintf(w, "%s: download %.2f s per node: received %.0f%%, parent-bound %.0f%%, nothing to ask %.0f%%, no parent %.0f%% (%.2f parents sending)\n",
			name, d.Capacity/n/max(down, 1), f(d.Received, d.Capacity), f(d.ParentBound, d.Capacity), f(d.Nothing, d.Capacity), f(d.NoParent, d.Capacity), links)
		fmt.Fprintf(w, "%s: peers' upload sent %.0f%%, child-bound %.0f%%, idle downloading %.0f%%, idle complete %.0f%%; seed sent %.0f%%, child-bound %.0f%%, idle %.0f%%\n",
			name, f(u.Sent, u.Capacity), f(u.ChildBound, u.Capacity), f(u.IdleDownloading, u.Capacity), f(u.IdleComplete, u.Capacity),
			f(sd.Sent, sd.Capacity), f(sd.ChildBound, sd.Capacity), f(sd.IdleDownloading+sd.IdleComplete, sd.Capacity))
	}
	for ph, name := range []string{"before", "after"} {
		sm := a.Samples[ph]
		if sm.Samples == 0 || sm.Downloading == 0 {
			continue
		}
		dl := float64(sm.Downloading) / 100
		fmt.Fprintf(w, "%s, sampled: of the downloading peers %.0f%% idle uploaders with no child, %.0f%% whose children hold all they hold, %.0f%% whose children asked others for what they lack; %.0f%% with nothing to ask (%.0f%% while a peer holds more); of %.1f waiting requests per peer %.0f%% held by an idle other parent\n",
			name, float64(sm.IdleNoChild)/dl, float64(sm.IdleNothingNew)/dl, float64(sm.IdleAskedElsewhere)/dl,
			float64(sm.NothingToAsk)/dl, float64(sm.NothingButAhead)/dl, float64(sm.Waiting)/float64(sm.Downloading), 100*float64(sm.Stealable)/float64(max(sm.Waiting, 1)))
	}
	fmt.Fprintf(w, "hops: mean %.2f, max %d, last piece %.2f; last piece first sent by the seed at %.2fs (mean; max %.2fs), reached the node %.2fs later (mean; max %.2fs)\n",
		a.MeanHops, a.MaxHops, a.LastPieceHops, a.LastPieceFirstSent[0], a.LastPieceFirstSent[1], a.LastPieceAge[0], a.LastPieceAge[1])
}
