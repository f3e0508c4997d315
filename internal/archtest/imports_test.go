package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pouch-p2p/pouch"

// components are the top-level libraries the mains wire together; bench is one too.
var components = []string{"supernode", "dfdaemon", "dfget", "registryproxy", "runtime", "bench"}

// under reports whether pkg (relative to the module) is dir or inside it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

func isComponent(pkg string) bool {
	return slices.ContainsFunc(components, func(c string) bool { return under(pkg, c) })
}

// violations lists every import in graph (package → its non-test imports, both relative to the
// module) that breaks a rule.
func violations(graph map[string][]string) []string {
	var out []string
	for pkg, imports := range graph {
		for _, imp := range imports {
			if why := rule(pkg, imp); why != "" {
				out = append(out, fmt.Sprintf("%s imports %s: %s", pkg, imp, why))
			}
		}
	}
	slices.Sort(out)
	return out
}

// rule says why pkg may not import imp, or "".
func rule(pkg, imp string) string {
	switch {
	case under(imp, "internal/fixture") && !under(pkg, "internal/fixture") && !under(pkg, "bench") && pkg != "cmd/dfbench":
		return "a test fixture, for tests, the demo and dfbench only (import it from _test.go files)"
	case under(imp, "cmd"):
		return "cmd holds the mains; nothing imports them"
	case under(pkg, "scheduler") && !under(imp, "scheduler"):
		return "scheduler and scheduler/picker are pure policies and import nothing else of Pouch"
	case (under(pkg, "scheduler") || under(pkg, "piece") || under(pkg, "internal")) && isComponent(imp):
		return "scheduler, piece and internal/* sit below the components and never import one"
	case under(pkg, "dfget") && under(imp, "dfdaemon"):
		return "dfget reaches a dfdaemon only through its API (internal/dfapi), its one-shot peer included, so that it starts fast"
	case under(pkg, "registryproxy") && under(imp, "dfdaemon"):
		return "registryproxy defines the small interface it needs instead of importing dfdaemon"
	case under(pkg, "bench") && (isComponent(imp) || under(imp, "internal/peer")):
		return "bench reaches the daemons only through their processes and published contracts"
	}
	return ""
}

// TestImportsPointOneWay checks the module's real import graph against the rules.
func TestImportsPointOneWay(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; the import graph comes from go list")
	}
	cmd := exec.Command(goBin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg := relative(fields[0])
		graph[pkg] = nil
		for _, imp := range fields[1:] {
			if r := relative(imp); r != imp {
				graph[pkg] = append(graph[pkg], r)
			}
		}
	}
	for _, want := range []string{"dfdaemon", "bench", "internal/fixture/image"} {
		if _, ok := graph[want]; !ok {
			t.Fatalf("go list did not list %s: the graph is not the module's\n%s", want, out)
		}
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// heavyForDfget are what the dfget binary must not link, directly or not: dfget starts for every
// download, and a small file's cost is mostly that start (docs/benchmarks.md, "Small files").
// The daemons' code and the libraries only they need: libp2p and its addresses, the Prometheus
// client, the piece store's bbolt, the registry mirror's distribution and containerd.
var heavyForDfget = []string{
	module + "/dfdaemon", module + "/supernode", module + "/registryproxy", module + "/piece", module + "/internal/peer",
	"github.com/libp2p/", "github.com/multiformats/", "github.com/prometheus/", "go.etcd.io/bbolt",
	"github.com/distribution/", "github.com/containerd/",
}

// TestDfgetLinksNoDaemon checks the dfget binary's whole dependency graph.
func TestDfgetLinksNoDaemon(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; the dependencies come from go list")
	}
	cmd := exec.Command(goBin, "list", "-deps", module+"/cmd/dfget")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"/internal/dfapi") {
		t.Fatalf("go list -deps did not list internal/dfapi: not dfget's dependencies\n%s", out)
	}
	for _, dep := range deps {
		for _, heavy := range heavyForDfget {
			if dep == heavy || strings.HasPrefix(dep, strings.TrimSuffix(heavy, "/")+"/") {
				t.Errorf("cmd/dfget links %s", dep)
			}
		}
	}
}

// relative strips the module path from an import path of the module; others are returned as is.
func relative(path string) string {
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return path
}

// TestRules shows that each rule catches what it is meant to, and lets through what is allowed.
func TestRules(t *testing.T) {
	t.Parallel()
	graph := map[string][]string{
		"dfdaemon":                   {"internal/fixture/registry", "registryproxy", "internal/peer", "scheduler"},
		"runtime":                    {"internal/fixture/containerd"},
		"internal/peer":              {"piece", "scheduler/picker", "dfdaemon"},
		"scheduler":                  {"supernode"},
		"scheduler/picker":           {"piece"},
		"piece":                      {"internal/fixture/daemon"},
		"registryproxy":              {"dfdaemon", "internal/httpx"},
		"bench":                      {"runtime", "internal/peer", "internal/fixture/image", "scheduler", "scheduler/picker", "internal/snapi"},
		"cmd/dfbench":                {"bench", "internal/fixture/daemon"},
		"cmd/dfdaemon":               {"dfdaemon", "internal/fixture/daemon"},
		"internal/fixture/container": {"internal/fixture/daemon"},
		"dfget":                      {"dfdaemon"},
	}
	want := []string{
		"bench imports internal/peer: bench reaches the daemons only through their processes and published contracts",
		"bench imports runtime: bench reaches the daemons only through their processes and published contracts",
		"cmd/dfdaemon imports internal/fixture/daemon: a test fixture, for tests, the demo and dfbench only (import it from _test.go files)",
		"dfdaemon imports internal/fixture/registry: a test fixture, for tests, the demo and dfbench only (import it from _test.go files)",
		"dfget imports dfdaemon: dfget reaches a dfdaemon only through its API (internal/dfapi), its one-shot peer included, so that it starts fast",
		"internal/peer imports dfdaemon: scheduler, piece and internal/* sit below the components and never import one",
		"piece imports internal/fixture/daemon: a test fixture, for tests, the demo and dfbench only (import it from _test.go files)",
		"registryproxy imports dfdaemon: registryproxy defines the small interface it needs instead of importing dfdaemon",
		"runtime imports internal/fixture/containerd: a test fixture, for tests, the demo and dfbench only (import it from _test.go files)",
		"scheduler imports supernode: scheduler and scheduler/picker are pure policies and import nothing else of Pouch",
		"scheduler/picker imports piece: scheduler and scheduler/picker are pure policies and import nothing else of Pouch",
	}
	if got := violations(graph); !slices.Equal(got, want) {
		t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
