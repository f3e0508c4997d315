package main

import (
	"fmt"
	"io"
	"strings"

	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	"github.com/schollz/progressbar/v3"

	"github.com/pouch-p2p/pouch/internal/snapi"
)

// progressView shows a preheat job while it runs: on a terminal one bar per task (the bytes
// the seed holds, then how many peers hold it), redrawn in place; otherwise one line each time
// a task or the job changes state or a peer finishes, for logs and CI.
type progressView struct {
	w     io.Writer
	tty   bool
	bars  map[digest.Digest]*progressbar.ProgressBar
	last  map[string]string // plain mode: what was printed last, per task (and "" for the job)
	drawn int               // terminal mode: lines drawn last time
}

func newProgressView(w io.Writer, tty bool) *progressView {
	return &progressView{w: w, tty: tty, bars: map[digest.Digest]*progressbar.ProgressBar{}, last: map[string]string{}}
}

func (v *progressView) show(j snapi.PreheatJob) {
	if v.tty {
		v.draw(j)
		return
	}
	for _, t := range j.Progress.Tasks {
		v.line(t.Digest.String(), fmt.Sprintf("%s %s %s", shortDigest(t.Digest), mediaKind(t.MediaType), taskSummary(j, t, false)))
	}
	v.line("", fmt.Sprintf("job %s %s", j.ID, jobSummary(j))) // last: the job ends after its tasks
}

// line prints s unless it is what was printed last for key.
func (v *progressView) line(key, s string) {
	if v.last[key] == s {
		return
	}
	v.last[key] = s
	fmt.Fprintln(v.w, s)
}

// draw redraws every task's bar in place (ANSI: cursor up, clear line).
func (v *progressView) draw(j snapi.PreheatJob) {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	lines := []string{fmt.Sprintf("job %s %s", j.ID, jobSummary(j))}
	for _, t := range j.Progress.Tasks {
		bar := v.bar(t)
		_ = bar.Set64(min(t.SeedBytes, bar.GetMax64()))
		rendered := strings.TrimSpace(strings.TrimPrefix(strings.ReplaceAll(bar.String(), "\x1b[0K", ""), "\r"))
		lines = append(lines, fmt.Sprintf("%s %-6s %s %s", shortDigest(t.Digest), mediaKind(t.MediaType), rendered, taskSummary(j, t, true)))
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + l + "\n")
	}
	v.drawn = len(lines)
	io.WriteString(v.w, b.String())
}

func (v *progressView) bar(t snapi.PreheatTask) *progressbar.ProgressBar {
	bar, ok := v.bars[t.Digest]
	if !ok || (t.Size > 0 && bar.GetMax64() != t.Size) {
		bar = progressbar.NewOptions64(max(t.Size, 1), progressbar.OptionSetWriter(io.Discard), progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(24), progressbar.OptionThrottle(0), progressbar.OptionUseANSICodes(true))
		v.bars[t.Digest] = bar
	}
	return bar
}

func jobSummary(j snapi.PreheatJob) string {
	s := fmt.Sprintf("%s %s (%s, %d tasks)", j.State, j.URL, j.Scope, len(j.Progress.Tasks))
	if j.Error != "" {
		s += ": " + j.Error
	}
	return s
}

// taskSummary is a task's state, with the seed's bytes unless a bar shows them, and its peers.
func taskSummary(j snapi.PreheatJob, t snapi.PreheatTask, bar bool) string {
	s := string(t.State)
	if !bar && t.Size > 0 {
		s += " " + units.BytesSize(float64(t.Size))
	}
	if j.Scope == snapi.ScopeAllPeers {
		s += fmt.Sprintf(" peers %d/%d", t.PeersDone, t.PeersTotal)
	}
	if t.Error != "" {
		s += ": " + t.Error
	}
	return s
}

func shortDigest(d digest.Digest) string {
	if err := d.Validate(); err != nil {
		return d.String()
	}
	return d.Algorithm().String() + ":" + d.Encoded()[:12]
}

// mediaKind names an OCI or docker media type by its role.
func mediaKind(mt string) string {
	switch {
	case mt == "":
		return "file"
	case strings.Contains(mt, "config"):
		return "config"
	case strings.Contains(mt, "layer"), strings.Contains(mt, "rootfs"):
		return "layer"
	}
	return "blob"
}
