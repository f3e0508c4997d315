// Package systemd checks the units in this directory and the example settings in ../examples:
// systemd-analyze accepts the units, every flag they pass, with the example environment
// files, is one the binaries have, and the daemons start with the example config files.
package systemd

import (
	"bufio"
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/pouch-p2p/pouch/deploy/internal/deploytest"
)

var binDir string

func TestMain(m *testing.M) { deploytest.Main(m, &binDir) }

// units are the unit files and, for each, the example environment file it reads.
var units = map[string]string{
	"pouch-supernode.service": "../examples/supernode.env",
	"pouch-dfdaemon.service":  "../examples/dfdaemon.env",
}

// installedBinDir is where the units expect the binaries.
const installedBinDir = "/usr/local/bin"

// systemd-analyze verify accepts both units (with the binaries where the test built them): no
// error and no warning.
func TestUnitsVerify(t *testing.T) {
	t.Parallel()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); the units are not verified")
	}
	dir := t.TempDir()
	var files []string
	for name := range units {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, bytes.ReplaceAll(data, []byte(installedBinDir+"/"), []byte(binDir+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := exec.Command(sa, append([]string{"verify"}, files...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, f := range files {
		// The sandbox's exposure as systemd rates it, for the log (0 best, 10 worst).
		out, err := exec.Command(sa, "security", "--offline=true", f).CombinedOutput()
		if err != nil {
			t.Logf("systemd-analyze security %s: %v", filepath.Base(f), err)
			continue
		}
		if i := bytes.Index(out, []byte("Overall exposure level")); i >= 0 {
			t.Logf("%s", bytes.TrimSpace(out[i:]))
		}
	}
}

// Every Exec line of each unit, expanded with the unit's defaults and its example
// environment file (commented *_OPTS examples included), passes only flags its binary has;
// the dfdaemon's mirror is the address it listens on.
func TestUnitFlagsExist(t *testing.T) {
	t.Parallel()
	for unit, envFile := range units {
		lines, env := readUnit(t, unit)
		for k, v := range readEnvFile(t, envFile) {
			env[k] = v
		}
		for _, line := range lines {
			argv := expand(line, env)
			bin := filepath.Base(argv[0])
			if filepath.Dir(argv[0]) != installedBinDir {
				t.Errorf("%s: %s is not in %s", unit, argv[0], installedBinDir)
			}
			var sub []string
			rest := argv[1:]
			for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
				sub, rest = append(sub, rest[0]), rest[1:]
			}
			help, err := deploytest.GetHelp(context.Background(), filepath.Join(binDir, bin), sub...)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range rest {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if strings.HasPrefix(a, "--") && !help.Flags[name] {
					t.Errorf("%s: %s passes --%s, which `%s --help` does not list", unit, strings.Join(append([]string{bin}, sub...), " "), name, bin)
				}
			}
		}
		if unit == "pouch-dfdaemon.service" {
			listen := exampleConfig(t, "dfdaemon")["listen"]
			if m := regexp.MustCompile(`--listen=(\S+)`).FindStringSubmatch(env["DFDAEMON_OPTS"]); m != nil {
				listen = m[1]
			}
			mirror, err := url.Parse(env["POUCH_MIRROR"])
			if err != nil || mirror.Host != listen {
				t.Errorf("%s: POUCH_MIRROR=%s is not the dfdaemon's listen address (%v)", envFile, env["POUCH_MIRROR"], listen)
			}
		}
	}
}

// Each daemon's unit reads its config file, /etc/pouch/<daemon>.yaml; started as the unit
// starts it, with the example config file and environment file (commented *_OPTS examples
// included), the daemon accepts every key and value and comes up (only its addresses moved to
// free ports and its state directory to a temporary one, as flags, which win).
func TestExampleConfigsStart(t *testing.T) {
	t.Parallel()
	for unit, envFile := range units {
		bin := strings.TrimSuffix(strings.TrimPrefix(unit, "pouch-"), ".service")
		lines, env := readUnit(t, unit)
		for k, v := range readEnvFile(t, envFile) {
			env[k] = v
		}
		var argv []string
		for _, line := range lines {
			if a := expand(line, env); filepath.Base(a[0]) == bin {
				argv = a
			}
		}
		want := "--config=/etc/pouch/" + bin + ".yaml"
		if !slices.Contains(argv, want) {
			t.Fatalf("%s: ExecStart %q does not pass %s", unit, argv, want)
		}
		example, err := filepath.Abs("../examples/" + bin + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range argv[1:] {
			switch {
			case a == want:
				a = "--config=" + example
			case strings.HasPrefix(a, "--data-dir="):
				a = "--data-dir=" + t.TempDir()
			}
			args = append(args, a)
		}
		// The example's supernode is on another host: libp2p on every interface, any free port.
		args = append(args, "--listen=127.0.0.1:0", "--p2p-listen=/ip4/0.0.0.0/tcp/0")
		deploytest.Start(t, bin, filepath.Join(binDir, bin), args...)
	}
}

// exampleConfig reads an example config file's scalar settings.
func exampleConfig(t *testing.T, bin string) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../examples/" + bin + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatalf("examples/%s.yaml: %v", bin, err)
	}
	out := map[string]string{}
	for k, v := range cfg {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// readUnit returns a unit's Exec lines (without systemd's prefixes such as "+") and the
// variables its Environment= lines set.
func readUnit(t *testing.T, name string) (execLines []string, env map[string]string) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "=")
		switch {
		case !ok || strings.HasPrefix(key, "#"):
		case key == "Environment":
			for _, kv := range strings.Fields(value) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case strings.HasPrefix(key, "Exec"):
			execLines = append(execLines, strings.TrimLeft(value, "+-@!:"))
		}
	}
	return execLines, env
}

// optsLine is an *_OPTS assignment, also as a commented example.
var optsLine = regexp.MustCompile(`^#?([A-Z_]+_OPTS)=(.*)$`)

// readEnvFile reads NAME=VALUE lines (values optionally in double quotes).
func readEnvFile(t *testing.T, name string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := optsLine.FindStringSubmatch(line); m != nil {
			env[m[1]] = strings.Trim(m[2], `"`)
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// expand does what systemd does to an Exec line: %S is /var/lib, ${NAME} is one word, $NAME
// splits into words.
func expand(line string, env map[string]string) []string {
	line = strings.ReplaceAll(line, "%S", "/var/lib")
	var argv []string
	for _, word := range strings.Fields(line) {
		if name, ok := strings.CutPrefix(word, "$"); ok && !strings.HasPrefix(name, "{") {
			argv = append(argv, strings.Fields(env[name])...)
			continue
		}
		argv = append(argv, os.Expand(word, func(k string) string { return env[k] }))
	}
	return argv
}
