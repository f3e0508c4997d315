package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	units "github.com/docker/go-units"
)

// Files written by [WriteDir] and [WriteReport].
const (
	ResultFile = "result.json"
	PlotFile   = "completion.svg"
	ReportPlot = "report.svg"
)

// WriteTable prints a result as a table.
func WriteTable(w io.Writer, r Result) error {
	fmt.Fprintf(w, "dfbench %s: %s, N=%d, %s, up %s, down %s, seed %s, origin %s",
		r.Kind, r.Mode, r.Nodes, units.BytesSize(float64(r.SizeBytes)), rate(r.UploadRate), rate(r.DownloadRate), rate(r.SeedRate), rate(r.OriginRate))
	if r.PieceSize > 0 {
		fmt.Fprintf(w, ", pieces %s", units.BytesSize(float64(r.PieceSize)))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tT_min\tp50\tp99\tmax\tmax/T_min\tp50/T_min\torigin÷size\tfailed\t")
	row := func(name string, t Timing) {
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2fs\t%.2fs\t%.2fs\t%.2f\t%.2f\t%.2f\t%d\t\n", name, t.TMin, t.P50, t.P99, t.Max, t.MaxOverTMin, t.P50OverTMin, t.OriginRatio, t.Failed)
	}
	row("pouch", r.Timing)
	if r.Baseline != nil {
		row("baseline", r.Baseline.Timing)
	}
	tw.Flush()
	if r.Baseline != nil {
		fmt.Fprintf(w, "speed-up over the baseline (max ÷ max): %.2f×\n", r.Baseline.Speedup)
	}
	fmt.Fprintf(w, "bytes received: from peers %s, from the seed %s, from the origin directly %s; origin sent %s\n",
		units.BytesSize(float64(r.BytesFromPeers)), units.BytesSize(float64(r.BytesFromSeed)), units.BytesSize(float64(r.BytesFromOrigin)), units.BytesSize(float64(r.OriginBytes)))
	if r.Kind == "run" {
		fmt.Fprintf(w, "supernode: %.2f CPU s, peak RSS %s, %d parents dropped as idle; dfdaemon peak RSS (largest) %s\n",
			r.SupernodeCPUSeconds, units.BytesSize(float64(r.SupernodePeakRSS)), r.IdleDrops, units.BytesSize(float64(r.DfdaemonPeakRSS)))
	} else {
		fmt.Fprintf(w, "simulated %d events in %.1fs, %d parents dropped as idle\n", r.SimEvents, r.SimWallSeconds, r.IdleDrops)
		if r.SimAccount != nil {
			writeSimAccount(w, r.SimAccount, r.Nodes, float64(r.DownloadRate))
		}
	}
	if ws := r.Waits; ws != nil {
		fmt.Fprintf(w, "dfdaemons, mean per node: downloading %.2f s receiving (from %.2f parents at once), %.2f s requested, %.2f s undigested, %.2f s nothing to ask, %.2f s no parent; uploading %.2f s; requests moved %.1f with a cancel, %.1f without\n",
			ws.Seconds["receiving"], ws.SendingParents, ws.Seconds["requested"], ws.Seconds["undigested"], ws.Seconds["nothing"], ws.Seconds["no_parent"], ws.UploadBusy, ws.Moved, ws.Stolen)
	}
	if r.Timeline != nil {
		writeDecomposition(w, r.Timeline, r.SizeBytes, r.DownloadRate, min(r.OriginRate, r.SeedRate))
	}
	if len(r.PerNode) <= 64 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "node\twave\tseconds\tdigest\tbaseline s\t")
		for i, n := range r.PerNode {
			d := "ok"
			if !n.DigestOK {
				d = "BAD " + n.Error
			}
			b := ""
			if r.Baseline != nil && i < len(r.Baseline.PerNode) {
				b = fmt.Sprintf("%.2f", r.Baseline.PerNode[i].Seconds)
			}
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%s\t%s\t\n", n.Node, n.Wave, n.Seconds, d, b)
		}
		tw.Flush()
	}
	return nil
}

func rate(r int64) string { return fmt.Sprintf("%g MB/s", float64(r)/1e6) }

// WriteDir writes result.json and the completion plot into dir, and the timeline's plot when
// the run sampled one.
func WriteDir(dir string, r Result) error {
	if err := writeJSON(dir, ResultFile, r); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, PlotFile), []byte(CompletionSVG(r)), 0o644); err != nil {
		return err
	}
	if r.Timeline != nil {
		return os.WriteFile(filepath.Join(dir, TimelinePlot), []byte(TimelineSVG(r)), 0o644)
	}
	return nil
}

// writeJSON writes v, indented, as dir/name, creating dir.
func writeJSON(dir, name string, v any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
}

// ReadResult reads dir/result.json.
func ReadResult(dir string) (Result, error) {
	var r Result
	b, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("bench: %s: %w", filepath.Join(dir, ResultFile), err)
	}
	return r, nil
}

func sortedSeconds(ns []NodeResult) []float64 {
	xs := make([]float64, len(ns))
	for i, n := range ns {
		xs[i] = n.Seconds
	}
	slices.Sort(xs)
	return xs
}

// CompletionSVG plots each node's completion time, sorted, with the T_min line and the baseline.
func CompletionSVG(r Result) string {
	var ss []series
	ps := sortedSeconds(r.PerNode)
	pts := func(xs []float64) []point {
		p := make([]point, len(xs))
		for i, x := range xs {
			p[i] = point{float64(i + 1), x}
		}
		return p
	}
	ss = append(ss, series{name: "pouch", color: "#1f77b4", pts: pts(ps), marks: len(ps) <= 200})
	if r.Baseline != nil {
		bs := sortedSeconds(r.Baseline.PerNode)
		ss = append(ss, series{name: "baseline (origin only)", color: "#d62728", pts: pts(bs), marks: len(bs) <= 200})
		ss = append(ss, series{name: "baseline bound", color: "#d62728", dashed: true, pts: []point{{1, r.Baseline.TMin}, {float64(max(len(bs), 2)), r.Baseline.TMin}}})
	}
	ss = append(ss, series{name: "T_min (Kumar–Ross)", color: "#2ca02c", dashed: true, pts: []point{{1, r.TMin}, {float64(max(len(ps), 2)), r.TMin}}})
	title := fmt.Sprintf("%s %s: N=%d, %s — completion time per node, sorted", r.Kind, r.Mode, r.Nodes, units.BytesSize(float64(r.SizeBytes)))
	return plot(title, "node (sorted by completion time)", "seconds", false, ss)
}

// WriteReport reads the result.json of each directory and writes one table (to w) and one plot of
// completion time against N (to outDir/report.svg).
func WriteReport(w io.Writer, outDir string, dirs []string) error {
	var rs []Result
	for _, d := range dirs {
		r, err := ReadResult(d)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	slices.SortStableFunc(rs, func(a, b Result) int {
		if c := strings.Compare(a.Kind+a.Mode, b.Kind+b.Mode); c != 0 {
			return c
		}
		return a.Nodes - b.Nodes
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tmode\tN\tsize\tT_min\tp50\tmax\tmax/T_min\tp50/T_min\torigin÷size\tbaseline max\tspeed-up\tfailed\t")
	for _, r := range rs {
		bm, sp := "-", "-"
		if r.Baseline != nil {
			bm, sp = fmt.Sprintf("%.2fs", r.Baseline.Max), fmt.Sprintf("%.2f×", r.Baseline.Speedup)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.2fs\t%.2fs\t%.2fs\t%.2f\t%.2f\t%.2f\t%s\t%s\t%d\t\n", r.Kind, r.Mode, r.Nodes,
			units.BytesSize(float64(r.SizeBytes)), r.TMin, r.P50, r.Max, r.MaxOverTMin, r.P50OverTMin, r.OriginRatio, bm, sp, r.Failed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// One series per kind+mode, and its bound and baseline.
	groups := map[string][]Result{}
	var keys []string
	for _, r := range rs {
		k := r.Kind + " " + r.Mode
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	colors := []string{"#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}
	var ss []series
	for i, k := range keys {
		c := colors[i%len(colors)]
		var mx, tm, bl []point
		for _, r := range groups[k] {
			mx = append(mx, point{float64(r.Nodes), r.Max})
			tm = append(tm, point{float64(r.Nodes), r.TMin})
			if r.Baseline != nil {
				bl = append(bl, point{float64(r.Nodes), r.Baseline.Max})
			}
		}
		ss = append(ss, series{name: k + " max", color: c, pts: mx, marks: true},
			series{name: k + " T_min", color: c, dashed: true, pts: tm})
		if len(bl) > 0 {
			ss = append(ss, series{name: k + " baseline max", color: "#d62728", pts: bl, marks: true})
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, ReportPlot), []byte(plot("completion time (max) against N", "N (nodes)", "seconds", true, ss)), 0o644)
}

type point struct{ x, y float64 }

type series struct {
	name, color string
	dashed      bool
	marks       bool
	pts         []point
}

// plot draws line series on linear axes (log x when logX) as a standalone SVG.
func plot(title, xlabel, ylabel string, logX bool, ss []series) string {
	const W, H, L, R, T, B = 760.0, 440.0, 70.0, 220.0, 40.0, 50.0
	fx := func(x float64) float64 { return x }
	if logX {
		fx = func(x float64) float64 { return math.Log10(math.Max(x, 1e-9)) }
	}
	x0, x1, y1 := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range ss {
		for _, p := range s.pts {
			if math.IsInf(p.y, 0) || math.IsNaN(p.y) {
				continue
			}
			x0, x1, y1 = math.Min(x0, fx(p.x)), math.Max(x1, fx(p.x)), math.Max(y1, p.y)
		}
	}
	if math.IsInf(x0, 0) {
		x0, x1 = 0, 1
	}
	if x1 == x0 {
		x0, x1 = x0-1, x1+1
	}
	if y1 <= 0 {
		y1 = 1
	}
	ystep := niceStep(y1 / 5)
	y1 = math.Ceil(y1*1.05/ystep) * ystep
	px := func(x float64) float64 { return L + (fx(x)-x0)/(x1-x0)*(W-L-R) }
	py := func(y float64) float64 { return H - B - y/y1*(H-T-B) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">%s</text>`+"\n", L, html.EscapeString(title))
	// Axes and grid.
	fmt.Fprintf(&b, `<path d="M%.1f %.1f V%.1f H%.1f" stroke="black" fill="none"/>`+"\n", L, T, H-B, W-R)
	for y := 0.0; y <= y1+1e-9; y += ystep {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			L, W-R, py(y), py(y), L-6, py(y)+4, trimFloat(y))
	}
	for _, x := range xTicks(x0, x1, logX) {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			px(x), px(x), H-B, H-B+5, px(x), H-B+18, trimFloat(x))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", L+(W-L-R)/2, H-12, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", T+(H-T-B)/2, html.EscapeString(ylabel))
	legend := 0
	for _, s := range ss {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var d strings.Builder
		for j, p := range s.pts {
			if math.IsInf(p.y, 0) || math.IsNaN(p.y) {
				continue
			}
			c := "L"
			if j == 0 {
				c = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", c, px(p.x), py(p.y))
		}
		fmt.Fprintf(&b, `<path d="%s" stroke="%s" stroke-width="2" fill="none"%s/>`+"\n", strings.TrimSpace(d.String()), s.color, dash)
		if s.marks {
			for _, p := range s.pts {
				if !math.IsInf(p.y, 0) && !math.IsNaN(p.y) {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`+"\n", px(p.x), py(p.y), s.color)
				}
			}
		}
		if s.name == "" { // one of several lines named by the first
			continue
		}
		ly := T + 10 + float64(legend)*18
		legend++
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			W-R+12, W-R+36, ly, ly, s.color, dash, W-R+42, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(s float64) float64 {
	if s <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(s)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= s {
			return m * p
		}
	}
	return 10 * p
}

// xTicks returns tick positions in data units between the transformed bounds x0 and x1.
func xTicks(x0, x1 float64, logX bool) []float64 {
	var t []float64
	if logX {
		for e := math.Floor(x0); e <= math.Ceil(x1)+1e-9; e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				if lv := math.Log10(v); lv >= x0-1e-9 && lv <= x1+1e-9 {
					t = append(t, v)
				}
			}
		}
		return t
	}
	step := niceStep((x1 - x0) / 8)
	for v := math.Ceil(x0/step) * step; v <= x1+1e-9; v += step {
		t = append(t, v)
	}
	return t
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
