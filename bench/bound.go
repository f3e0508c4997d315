package bench

import "math"

// Bound is the Kumar–Ross minimum distribution time (seconds) for one seed uploading at us
// bytes/s and n peers each uploading at u and downloading at most d, content size f bytes:
//
//	T_min = max(F/u_s, F/d_min, N·F/(u_s + Σ u_i))
//
// It returns +Inf when a rate needed is zero.
func Bound(f int64, n int, us, d, u float64) float64 {
	return BoundSources(f, n, us, 0, d, u)
}

// BoundSources is [Bound] when, besides the seed, sources more peers that already hold the whole
// content (uploading extra bytes/s together) serve the n downloading peers: the first term
// becomes F/(u_s+extra) (the content leaves the holders no faster than that) and extra adds to
// the aggregate upload of the third.
func BoundSources(f int64, n int, us, extra, d, u float64) float64 {
	if n <= 0 || f <= 0 {
		return 0
	}
	F := float64(f)
	src := us + extra
	if !(src > 0) || !(d > 0) {
		return math.Inf(1)
	}
	return max(F/src, F/d, float64(n)*F/(src+float64(n)*u))
}

// BaselineBound is the minimum time for n peers each downloading at most d to get F bytes
// straight from an origin serving ro bytes/s in total: max(F/d, N·F/r_o).
func BaselineBound(f int64, n int, ro, d float64) float64 {
	if n <= 0 || f <= 0 {
		return 0
	}
	if !(ro > 0) || !(d > 0) {
		return math.Inf(1)
	}
	return max(float64(f)/d, float64(n)*float64(f)/ro)
}

// wave is one group of nodes that start together.
type wave struct {
	first, n int     // nodes first..first+n-1
	tMin     float64 // its bound, the nodes of earlier waves being sources
	tBase    float64 // its baseline bound
}

// us is the seed's effective upload: it cannot send faster than the origin feeds it.
func (c Config) us() float64 { return float64(min(c.SeedRate, c.OriginRate)) }

// waves splits the nodes: one wave in burst mode, ⌈WaveFraction·N⌉ nodes at a time in waves mode.
func (c Config) waves() []wave {
	size := c.Nodes
	if c.Mode == ModeWaves {
		size = max(1, int(math.Ceil(WaveFraction*float64(c.Nodes))))
	}
	var ws []wave
	for first := 0; first < c.Nodes; first += size {
		n := min(size, c.Nodes-first)
		// Nodes of earlier waves hold the content; after the first wave the seed's
		// single-source term no longer applies alone.
		extra := float64(first) * float64(c.UploadRate)
		ws = append(ws, wave{first: first, n: n,
			tMin:  BoundSources(c.Size, n, c.us(), extra, float64(c.DownloadRate), float64(c.UploadRate)),
			tBase: BaselineBound(c.Size, n, float64(c.OriginRate), float64(c.DownloadRate)),
		})
	}
	return ws
}

// WaveBounds returns each wave's bound in seconds (one value in burst mode). A node's completion
// time is measured from the start of its own wave and compared with its wave's bound; T_min of
// the run is the largest of them.
func (c Config) WaveBounds() []float64 {
	var b []float64
	for _, w := range c.waves() {
		b = append(b, w.tMin)
	}
	return b
}

// TMin is the bound of the run: the largest wave bound.
func (c Config) TMin() float64 {
	var t float64
	for _, w := range c.waves() {
		t = max(t, w.tMin)
	}
	return t
}

// baselineTMin is the baseline's bound: the largest wave's.
func (c Config) baselineTMin() float64 {
	var t float64
	for _, w := range c.waves() {
		t = max(t, w.tBase)
	}
	return t
}
