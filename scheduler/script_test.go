package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pouch-p2p/pouch/internal/cliutil"
)

// A tiny scenario language, one command a line ('#' starts a comment):
//
//	config maxParents=3 candidates=8 maxFailures=2 seed=7 swapRatio=2 corruptReporters=2 reportWindow=1m
//	task pieces=100                       SetTask (task "t" unless task=NAME)
//	join ID [seed] [up=10MB] [have=N]     Join
//	report ID have=N [complete]           Report
//	transfer ID from=P bytes=4MB dur=1s   Transfer
//	fail ID from=P unreachable|timeout|corrupt   Failure; the transcript shows its Verdict
//	leave ID
//	block ID
//	sourcefailed
//	sourcerecovered
//	tick 1s                               advance the clock
//	expect ID COND...                     assert on ID's current decision:
//	    parents=a,b  first=a  has=a  lacks=a  n=3  bts  nobts  none  children>=N
//	expect verdict ignored|counted|blocked   the Verdict of the latest fail
//	expect stats COND...                  seedchildren<=N  orphans=N  maxchildren<=N  bts=N  sources=N  blocked=N
//
// After every command but expect, the runner checks the invariants and
// appends to the transcript the returned decision or changed peers, the
// side-effect changes (TakeChanged) and a table of every peer.
type script struct {
	s    *Scheduler
	task TaskID
	now  time.Time
	out  strings.Builder
	last Verdict // of the latest fail command
}

func newScript(cfg Config) *script {
	return &script{s: New(cfg), task: "t", now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func runScript(src string) (string, error) {
	sc := newScript(Config{})
	for n, line := range strings.Split(src, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if err := sc.exec(line); err != nil {
			return sc.out.String(), fmt.Errorf("line %d %q: %w", n+1, line, err)
		}
	}
	return sc.out.String(), nil
}

// parseSize reads a size or rate as the daemons' flags do ("100MB", "4MiB").
func parseSize(v string) (float64, error) {
	n, err := cliutil.ParseBytes(v)
	return float64(n), err
}

func kv(args []string) (map[string]string, []string) {
	m := map[string]string{}
	var flags []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			m[k] = v
		} else {
			flags = append(flags, a)
		}
	}
	return m, flags
}

func (sc *script) exec(line string) error {
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	if cmd == "expect" {
		return sc.expect(args)
	}
	fmt.Fprintf(&sc.out, "> %s\n", line)
	m, flags := kv(args)
	id := func() PeerID {
		if len(flags) == 0 {
			return ""
		}
		return PeerID(flags[0])
	}
	atoi := func(k string) (int, error) {
		if m[k] == "" {
			return 0, nil
		}
		return strconv.Atoi(m[k])
	}
	var err error
	switch cmd {
	case "config":
		var c Config
		for k, v := range m {
			switch k {
			case "maxParents":
				c.MaxParents, err = strconv.Atoi(v)
			case "candidates":
				c.Candidates, err = strconv.Atoi(v)
			case "maxFailures":
				c.MaxFailures, err = strconv.Atoi(v)
			case "seed":
				c.Seed, err = strconv.ParseUint(v, 10, 64)
			case "swapRatio":
				c.SwapRatio, err = strconv.ParseFloat(v, 64)
			case "defaultUpload":
				c.DefaultUpload, err = parseSize(v)
			case "corruptReporters":
				c.CorruptReporters, err = strconv.Atoi(v)
			case "reportWindow":
				c.ReportWindow, err = time.ParseDuration(v)
			default:
				err = fmt.Errorf("unknown config %s", k)
			}
			if err != nil {
				return err
			}
		}
		sc.s = New(c)
		return nil
	case "task":
		if m["task"] != "" {
			sc.task = TaskID(m["task"])
		}
		n, err := atoi("pieces")
		if err != nil {
			return err
		}
		sc.s.SetTask(sc.task, n)
	case "join":
		info := PeerInfo{ID: id(), Seed: slices.Contains(flags, "seed")}
		if v := m["up"]; v != "" {
			if info.UploadRate, err = parseSize(v); err != nil {
				return err
			}
		}
		have, err := atoi("have")
		if err != nil {
			return err
		}
		sc.decision(info.ID, sc.s.Join(sc.now, sc.task, info, have))
	case "report":
		have, err := atoi("have")
		if err != nil {
			return err
		}
		sc.decision(id(), sc.s.Report(sc.now, sc.task, id(), have, slices.Contains(flags, "complete")))
	case "transfer":
		b, err := parseSize(m["bytes"])
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(m["dur"])
		if err != nil {
			return err
		}
		sc.s.Transfer(sc.now, sc.task, id(), PeerID(m["from"]), int64(b), d)
	case "fail":
		why := FailUnreachable
		switch {
		case slices.Contains(flags, "timeout"):
			why = FailTimeout
		case slices.Contains(flags, "corrupt"):
			why = FailCorrupt
		}
		d, v := sc.s.Failure(sc.now, sc.task, id(), PeerID(m["from"]), why)
		sc.last = v
		fmt.Fprintf(&sc.out, "= %s %s (%s)\n", id(), fmtDecision(d), v)
	case "leave":
		fmt.Fprintf(&sc.out, "= changed %v\n", sc.s.Leave(sc.now, sc.task, id()))
	case "block":
		fmt.Fprintf(&sc.out, "= changed %v\n", sc.s.Block(sc.now, sc.task, id()))
	case "sourcefailed":
		sc.s.SourceFailed(sc.task)
	case "sourcerecovered":
		sc.s.SourceRecovered(sc.task)
	case "tick":
		d, err := time.ParseDuration(flags[0])
		if err != nil {
			return err
		}
		sc.now = sc.now.Add(d)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	if ch := sc.s.TakeChanged(sc.task); len(ch) > 0 {
		fmt.Fprintf(&sc.out, "~ changed %v\n", ch)
	}
	sc.table()
	return checkInvariants(sc.s)
}

func fmtDecision(d Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "parents=[%s]", strings.Join(ids(d.Parents), " "))
	if d.BackToSource {
		b.WriteString(" back-to-source")
	}
	return b.String()
}

func ids(ps []PeerID) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func (sc *script) decision(id PeerID, d Decision) {
	fmt.Fprintf(&sc.out, "= %s %s\n", id, fmtDecision(d))
}

func (sc *script) table() {
	t := sc.s.tasks[sc.task]
	if t == nil {
		return
	}
	for _, p := range t.order {
		if p == nil {
			continue
		}
		state := "down"
		switch {
		case p.seed && !p.complete:
			state = "seed"
		case p.complete:
			state = "complete"
		case t.isOrphan(p):
			state = "orphan"
		}
		if p.blocked {
			state += ",blocked"
		}
		d := t.decision(p)
		fmt.Fprintf(&sc.out, "  %-6s %-17s have=%-4d children=%-2d %s\n", p.id, state, p.have, len(p.children), fmtDecision(d))
	}
}

func (sc *script) expect(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("expect needs a subject and a condition")
	}
	if args[0] == "verdict" {
		if got := sc.last.String(); got != args[1] {
			return fmt.Errorf("last failure report was %s, want %s", got, args[1])
		}
		return nil
	}
	if args[0] == "stats" {
		st := sc.s.TaskStats(sc.task)
		for _, c := range args[1:] {
			var k, v string
			var le bool
			if a, b, ok := strings.Cut(c, "<="); ok {
				k, v, le = a, b, true
			} else if a, b, ok := strings.Cut(c, "="); ok {
				k, v = a, b
			} else {
				return fmt.Errorf("bad stats condition %q", c)
			}
			want, err := strconv.Atoi(v)
			if err != nil {
				return err
			}
			var got int
			switch k {
			case "seedchildren":
				got = st.SeedChildren
			case "orphans":
				got = st.Orphans
			case "maxchildren":
				got = st.MaxChildren
			case "bts":
				got = st.BackToSource
			case "sources":
				got = st.Sources
			case "blocked":
				got = st.Blocked
			default:
				return fmt.Errorf("unknown stat %q", k)
			}
			if (le && got > want) || (!le && got != want) {
				return fmt.Errorf("stat %s = %d, want %s", k, got, c[len(k):])
			}
		}
		return nil
	}
	id := PeerID(args[0])
	d := sc.s.Decision(sc.task, id)
	for _, c := range args[1:] {
		if v, found := strings.CutPrefix(c, "children>="); found {
			want, err := strconv.Atoi(v)
			if err != nil {
				return err
			}
			p := sc.s.tasks[sc.task].peers[id]
			if p == nil || len(p.children) < want {
				return fmt.Errorf("expect %s %s: not so many children", id, c)
			}
			continue
		}
		k, v, _ := strings.Cut(c, "=")
		ok := true
		switch k {
		case "parents":
			want := []PeerID{}
			if v != "" {
				for _, x := range strings.Split(v, ",") {
					want = append(want, PeerID(x))
				}
			}
			ok = slices.Equal(want, append([]PeerID{}, d.Parents...))
		case "first":
			ok = len(d.Parents) > 0 && d.Parents[0] == PeerID(v)
		case "has":
			ok = slices.Contains(d.Parents, PeerID(v))
		case "lacks":
			ok = !slices.Contains(d.Parents, PeerID(v))
		case "n":
			n, err := strconv.Atoi(v)
			if err != nil {
				return err
			}
			ok = len(d.Parents) == n
		case "bts":
			ok = d.BackToSource
		case "nobts":
			ok = !d.BackToSource
		case "none":
			ok = len(d.Parents) == 0
		default:
			return fmt.Errorf("unknown condition %q", c)
		}
		if !ok {
			return fmt.Errorf("expect %s %s: got %s", id, c, fmtDecision(d))
		}
	}
	return nil
}
