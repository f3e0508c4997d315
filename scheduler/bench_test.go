package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// swarm builds one task with a seed and n peers that joined and reported
// some progress, as after a burst.
func swarm(n, pieces int) (*Scheduler, []PeerID) {
	s := New(Config{})
	s.SetTask("t", pieces)
	s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0)
	ids := make([]PeerID, n)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range ids {
		ids[i] = PeerID(fmt.Sprint("p", i))
		s.Join(t0, "t", PeerInfo{ID: ids[i], UploadRate: float64(50+r.IntN(100)) * 1e6}, 0)
	}
	for _, id := range ids {
		s.Report(t0, "t", id, r.IntN(pieces/2), false)
	}
	return s, ids
}

// latencies records per-call durations and reports their p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns/decision")
	b.ReportMetric(float64(l[len(l)-1].Nanoseconds()), "max-ns/decision")
}

// BenchmarkJoin: peers join a task of 10,000 peers. They join in batches
// of 1,000 that then leave, untimed, so N stays within 10,000–11,000.
func BenchmarkJoin(b *testing.B) {
	s, _ := swarm(10_000, 1000)
	lat := make(latencies, 0, b.N)
	const batch = 1000
	var joined []PeerID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(joined) == batch {
			b.StopTimer()
			for _, id := range joined {
				s.Leave(t0, "t", id)
			}
			joined = joined[:0]
			b.StartTimer()
		}
		id := PeerID("new" + strconv.Itoa(i))
		start := time.Now()
		s.Join(t0, "t", PeerInfo{ID: id}, 0)
		lat = append(lat, time.Since(start))
		joined = append(joined, id)
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkReport: a random peer of 10,000 reports progress (refill and at
// most one swap).
func BenchmarkReport(b *testing.B) {
	s, ids := swarm(10_000, 1000)
	r := rand.New(rand.NewPCG(1, 2))
	have := make([]int, len(ids))
	lat := make(latencies, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := r.IntN(len(ids))
		have[k] = min(have[k]+1, 999)
		start := time.Now()
		s.Report(t0, "t", ids[k], have[k], false)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkReportIdle: as BenchmarkReport, but every peer has measured a transfer (from its
// first parent) and the clock runs past the idle window, so a report drops the lateral
// parents nobody received from (dropIdle) and refills the slots.
func BenchmarkReportIdle(b *testing.B) {
	s, ids := swarm(10_000, 1000)
	for _, id := range ids {
		if d := s.Decision("t", id); len(d.Parents) > 0 {
			s.Transfer(t0, "t", id, d.Parents[0], 1<<20, 500*time.Millisecond)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	have := make([]int, len(ids))
	lat := make(latencies, 0, b.N)
	now := t0.Add(idleAfter)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := r.IntN(len(ids))
		have[k] = min(have[k]+1, 999)
		now = now.Add(time.Microsecond)
		start := time.Now()
		s.Report(now, "t", ids[k], have[k], false)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkLeave: random peers of 10,000 die and all their children are
// reassigned; they re-join in batches of 1,000, untimed.
func BenchmarkLeave(b *testing.B) {
	s, ids := swarm(10_000, 1000)
	r := rand.New(rand.NewPCG(3, 4))
	lat := make(latencies, 0, b.N)
	const batch = 1000
	var left []PeerID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(left) == batch {
			b.StopTimer()
			for _, id := range left {
				s.Join(t0, "t", PeerInfo{ID: id}, 0)
			}
			left = left[:0]
			b.StartTimer()
		}
		id := ids[r.IntN(len(ids))]
		if slices.Contains(left, id) {
			continue
		}
		start := time.Now()
		s.Leave(t0, "t", id)
		lat = append(lat, time.Since(start))
		left = append(left, id)
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkBurst: 10,000 peers join one task at once, then every peer
// reports and completes in turn — the whole life of a cold pull. ns/op is
// per call.
func BenchmarkBurst(b *testing.B) {
	const n = 10_000
	ids := make([]PeerID, n)
	for i := range ids {
		ids[i] = PeerID(fmt.Sprint("p", i))
	}
	lat := make(latencies, 0, 3*n)
	b.ReportAllocs()
	calls := 0
	for b.Loop() {
		s := New(Config{})
		s.SetTask("t", 100)
		s.Join(t0, "t", PeerInfo{ID: "seed", Seed: true}, 0)
		lat = lat[:0]
		for _, id := range ids {
			start := time.Now()
			s.Join(t0, "t", PeerInfo{ID: id}, 0)
			lat = append(lat, time.Since(start))
		}
		for _, id := range ids {
			start := time.Now()
			s.Report(t0, "t", id, 50, false)
			lat = append(lat, time.Since(start))
		}
		for _, id := range ids {
			start := time.Now()
			s.Report(t0, "t", id, 100, true)
			lat = append(lat, time.Since(start))
		}
		calls += 3 * n
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls), "ns/decision")
	lat.report(b)
}
