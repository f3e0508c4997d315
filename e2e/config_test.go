package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/reqid"
)

// writeFile writes a config file into a test's temporary directory.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startEnv is start with variables added to the daemon's environment (through env(1), so the
// test's own environment stays as it is for the tests running beside it).
func startEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{log: &bytes.Buffer{}, mu: new(sync.Mutex)}
	var err error
	p.Proc, err = daemon.Start(context.Background(), name, "/usr/bin/env", append(append(env, filepath.Join(binDir, name)), args...), lockedBuffer{p.mu, p.log})
	t.Cleanup(func() {
		if p.Proc != nil {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, p.logText())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonLines decodes a JSON log, failing on a line that is not one object.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON (--log-format json): %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A supernode and a dfdaemon started with nothing but --config serve a download; the
// dfdaemon's JSON log lines of that download all carry its task ID, the dfdaemon's peer ID and
// the X-Request-ID the client sent, which the answer returns and the supernode logs too.
func TestConfigFileOnlyAndRequestIDs(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 3<<20)
	o := origin.NewFiles(t, map[string][]byte{"/blob": data})
	dir := t.TempDir()
	sn := start(t, "supernode", "--config", writeFile(t, "supernode.yaml", fmt.Sprintf(
		"listen: 127.0.0.1:0\ndata-dir: %s\nallow-networks: 127.0.0.0/8\nlog-level: debug\nlog-format: json\n", filepath.Join(dir, "sn"))))
	df := start(t, "dfdaemon", "--config", writeFile(t, "dfdaemon.yaml", fmt.Sprintf(
		"supernode: http://%s\nlisten: 127.0.0.1:0\ndata-dir: %s\nallow-networks: 127.0.0.0/8\nlog-level: debug\nlog-format: json\n", sn.HTTP, filepath.Join(dir, "df"))))

	const id = "e2e-config-1"
	body, _ := json.Marshal(dfapi.DownloadRequest{URL: o.URL + "/blob"})
	req, _ := http.NewRequest(http.MethodPost, "http://"+df.HTTP+dfapi.PathDownload, bytes.NewReader(body))
	req.Header.Set("Content-Type", dfapi.ContentType)
	req.Header.Set(reqid.Header, id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || sha(got) != sha(data) {
		t.Fatalf("download: %s, %d bytes (sha %s), %v; want 200 and %s", resp.Status, len(got), sha(got), err, sha(data))
	}
	if h := resp.Header.Get(reqid.Header); h != id {
		t.Errorf("answer's %s = %q, want %q", reqid.Header, h, id)
	}
	task := resp.Header.Get(dfapi.HeaderTaskID)

	// The last line of the download ("download complete") is logged after the body's last byte.
	var lines []map[string]any
	wait.Until(t, 30*time.Second, "the dfdaemon's download complete line", func() bool {
		lines = jsonLines(t, df.logText())
		for _, l := range lines {
			if l["msg"] == "download complete" {
				return true
			}
		}
		return false
	})
	n, peerID := 0, ""
	for _, l := range lines {
		if l["task"] != task {
			continue
		}
		n++
		if p, _ := l["peer"].(string); p == "" || peerID != "" && p != peerID {
			t.Errorf("line %v: peer %q, want the dfdaemon's one peer ID (%q)", l, p, peerID)
		} else {
			peerID = p
		}
		if l["request"] != id {
			t.Errorf("line %v: request %v, want %s", l, l["request"], id)
		}
	}
	if n < 2 {
		t.Errorf("%d log lines of task %s, want the download's lines", n, task)
	}
	found := false
	for _, l := range jsonLines(t, sn.logText()) {
		if l["msg"] == "peer registered" && l["request"] == id && l["task"] == task && l["peer"] == peerID {
			found = true
		}
	}
	if !found {
		t.Errorf("the supernode logged no registration of peer %s for task %s with request %s", peerID, task, id)
	}

	// A bad ID is refused, and says why.
	req, _ = http.NewRequest(http.MethodPost, "http://"+df.HTTP+dfapi.PathDownload, bytes.NewReader(body))
	req.Header.Set(reqid.Header, "two words")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), reqid.Header) {
		t.Errorf("bad %s: %s %s, want 400 naming the header", reqid.Header, resp.Status, msg)
	}
}

// A flag wins over its POUCH_ variable, which wins over the file: the ready line's metrics
// address says which one the supernode took.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, "supernode.yaml", fmt.Sprintf("listen: 127.0.0.1:0\ndata-dir: %s\nmetrics-listen: 127.0.0.1:0\n", filepath.Join(dir, "sn")))
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"file", nil, nil, "127.0.0.1:"},
		{"env over file", []string{"POUCH_METRICS_LISTEN=127.0.0.2:0"}, nil, "127.0.0.2:"},
		{"flag over env", []string{"POUCH_METRICS_LISTEN=127.0.0.2:0"}, []string{"--metrics-listen", "127.0.0.3:0"}, "127.0.0.3:"},
	} {
		p := startEnv(t, "supernode", tc.env, append([]string{"--config", file}, tc.args...)...)
		if !strings.HasPrefix(p.Metrics, tc.want) {
			t.Errorf("%s: metrics listener at %s, want %s*", tc.name, p.Metrics, tc.want)
		}
		p.Kill()
	}
}

// run runs one of the binaries to its end: exit code and stderr.
func run(t *testing.T, env []string, bin string, args ...string) (int, string) {
	t.Helper()
	return runPath(t, env, filepath.Join(binDir, bin), args...)
}

// oneLine checks that a failing command said exactly one line, naming the binary and want.
func oneLine(t *testing.T, what string, code int, stderr, bin, want string) {
	t.Helper()
	if code == 0 {
		t.Errorf("%s: exit 0, want a failure", what)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.HasPrefix(stderr, bin+": ") || !strings.Contains(stderr, want) {
		t.Errorf("%s: stderr %q, want one line starting %q and naming %q", what, stderr, bin+": ", want)
	}
}

// An unknown key or a bad value in the file stops the daemon with the file, the line and the
// key; so does a bad variable, named.
func TestConfigErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, bin := range []string{"supernode", "dfdaemon"} {
		for _, tc := range []struct{ text, want string }{
			{"listen: 127.0.0.1:0\n\nlissten: 127.0.0.1:0\n", `:3: unknown key "lissten"`},
			{"listen: 127.0.0.1:0\ngc-ttl: soon\n", `:2: gc-ttl: "soon" is not a duration`},
			{"gc-high: plenty\n", `:1: gc-high: "plenty" is not a size`},
		} {
			file := writeFile(t, bin+".yaml", tc.text)
			code, stderr := run(t, nil, bin, "--config", file, "--data-dir", filepath.Join(dir, bin))
			oneLine(t, bin+" "+tc.text, code, stderr, bin, file+tc.want)
		}
		code, stderr := run(t, []string{"POUCH_UPLOAD_RATE=fast"}, bin, "--data-dir", filepath.Join(dir, bin))
		oneLine(t, bin+" POUCH_UPLOAD_RATE=fast", code, stderr, bin, `$POUCH_UPLOAD_RATE: "fast" is not a size`)
	}
}

// A bad flag value on any binary is one line that says what is wrong, not the whole help, and
// a non-zero exit; a URL flag that is no URL is refused at start.
func TestBadFlagValuesOneLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		bin  string
		args []string
		want string
	}{
		{"supernode", []string{"--data-dir", dir, "--gc-ttl", "soon"}, `--gc-ttl: "soon" is not a duration`},
		{"supernode", []string{"--data-dir", dir, "--nope"}, "unknown flag --nope"},
		{"supernode", []string{"preheat", "--server", "notaurl", "docker.io/library/busybox"}, `--server: "notaurl" is not an http:// or https:// URL`},
		{"dfdaemon", []string{"--data-dir", dir, "--supernode", "notaurl"}, `--supernode: "notaurl" is not an http:// or https:// URL`},
		{"dfdaemon", []string{"--data-dir", dir, "--preheat-concurrency", "many"}, `--preheat-concurrency: "many" is not a whole number`},
		{"dfdaemon", []string{"--data-dir", dir, "--log-format", "xml"}, `--log-format: log format "xml": want console or json`},
		{"dfget", []string{"--supernode", "notaurl", "http://127.0.0.1:1/x"}, `--supernode: "notaurl" is not an http:// or https:// URL`},
		{"dfget", []string{"--daemon", "127.0.0.1:65001", "http://127.0.0.1:1/x"}, `--daemon: "127.0.0.1:65001" is not an http:// or https:// URL`},
		{"dfget", []string{"--timeout", "soon", "http://127.0.0.1:1/x"}, `--timeout: "soon" is not a duration`},
		{"pouch", []string{"mirror", "setup", "--mirror", "notaurl"}, `--mirror: "notaurl" is not an http:// or https:// URL`},
		{"pouch", []string{"run", "--cpus", "two", "busybox"}, `--cpus: "two" is not a number`},
		{"dfbench", []string{"run", "--nodes", "many"}, `--nodes: "many" is not a whole number`},
	} {
		code, stderr := run(t, nil, tc.bin, tc.args...)
		oneLine(t, tc.bin+" "+strings.Join(tc.args, " "), code, stderr, tc.bin, tc.want)
	}
}

// dfget with no dfdaemon answering says so in one plain line, no Go error chain, and falls
// back to the origin.
func TestDfgetNoDaemonOneLine(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 64<<10)
	o := origin.NewFiles(t, map[string][]byte{"/f": data})
	out := filepath.Join(t.TempDir(), "f")
	code, stderr := run(t, nil, "dfget", o.URL+"/f", "-O", out, "--daemon", "http://127.0.0.1:1", "--allow-networks", "127.0.0.0/8")
	if code != 0 || fileSHA(t, out) != sha(data) {
		t.Fatalf("dfget without a daemon: exit %d, %s", code, stderr)
	}
	want := "dfget: no dfdaemon answers at http://127.0.0.1:1 (connection refused): downloading from the origin directly\n"
	if stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}
