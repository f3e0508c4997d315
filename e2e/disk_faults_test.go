package e2e

import (
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dfgetpkg "github.com/pouch-p2p/pouch/dfget"
	"github.com/pouch-p2p/pouch/internal/fixture/damage"
)

// dfgetOK downloads url through daemon p into dst with dfget and checks that it exits 0 with data.
func dfgetOK(ctx context.Context, t *testing.T, p *proc, url, dst string, data []byte, args ...string) {
	t.Helper()
	args = append([]string{url, "-O", dst, "--daemon", "http://" + p.HTTP}, args...)
	if code, msg := dfget(ctx, args...); code != 0 {
		t.Fatalf("dfget %s on %s: exit %d: %s", filepath.Base(dst), p.Name, code, msg)
	}
	if got := fileSHA(t, dst); got != sha(data) {
		t.Fatalf("%s on %s: content %s, want %s", filepath.Base(dst), p.Name, got, sha(data))
	}
}

// A stopped dfdaemon's piece index is damaged. Started again, it says so in one line, starts,
// and serves what it still verifiably holds — a blob complete against its digest, and a file
// whose pieces the supernode's digests confirm — without fetching a byte of either again.
func TestBrokenIndexIsRebuilt(t *testing.T) {
	blob, file := randomBytes(t, 12<<20), randomBytes(t, 8<<20)
	o := origin.NewFiles(t, map[string][]byte{"/blob": blob, "/file": file})
	c := startCluster(t, 1)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dfgetOK(ctx, t, c.daemons[0], o.URL+"/blob", filepath.Join(out, "blob"), blob, "--digest", sha(blob))
	dfgetOK(ctx, t, c.daemons[0], o.URL+"/file", filepath.Join(out, "file"), file)
	sent := o.Sent.Load()

	index := filepath.Join(c.daemonDir(0), "pieces", "index.db")
	c.restartDaemon(t, 0, func() { damage.PastMeta(t, index) })
	if n := strings.Count(c.daemons[0].logText(), "piece index damaged"); n != 1 {
		t.Errorf("the restarted daemon said %d times that its index was damaged, want once:\n%s", n, c.daemons[0].logText())
	}
	if aside, _ := filepath.Glob(index + ".damaged-*"); len(aside) != 1 {
		t.Errorf("the damaged index was not kept aside: %v", aside)
	}

	dfgetOK(ctx, t, c.daemons[0], o.URL+"/blob", filepath.Join(out, "blob again"), blob, "--digest", sha(blob))
	dfgetOK(ctx, t, c.daemons[0], o.URL+"/file", filepath.Join(out, "file again"), file)
	if got := metric(t, c.daemons[0], "pouch_dfdaemon_download_bytes_total", nil); got != 0 {
		t.Errorf("the restarted daemon fetched %v bytes of content it held", got)
	}
	if got := metric(t, c.daemons[0], "pouch_dfdaemon_direct_fetches_total", nil); got != 0 {
		t.Errorf("the gate sent %v requests to the origin directly: the access was not learned again", got)
	}
	if got := o.Sent.Load(); got != sent {
		t.Errorf("the origin sent %d more bytes after the restart", got-sent)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted when the test ends
// (after the daemons started later, which are stopped first).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs for the daemon's data dir needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): the disk-full test needs one", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// A dfdaemon whose data dir is an 8 MiB tmpfs is asked for 16 MiB. dfget fails with the
// disk-full exit code and says so; no parent is reported at fault and the node does not go to
// the origin; and a small file the node held before is still served from it to another node.
func TestDiskFullBlamesNobody(t *testing.T) {
	small, big := randomBytes(t, 4<<20), randomBytes(t, 16<<20)
	o := origin.NewFiles(t, map[string][]byte{"/small": small, "/big": big})
	// The seed uploads slowly, so that the second node takes the small file from the first.
	c := startClusterWith(t, 1, []string{"--upload-rate", "1MB"})
	full := c.addDaemon(t, mountTmpfs(t, 8<<20))
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dfgetOK(ctx, t, full, o.URL+"/small", filepath.Join(out, "small"), small)
	code, msg := dfget(ctx, o.URL+"/big", "-O", filepath.Join(out, "big"), "--daemon", "http://"+full.HTTP)
	t.Logf("dfget on a full disk: exit %d: %s", code, msg)
	if code != dfgetpkg.ExitDiskFull || !strings.Contains(msg, "disk full") {
		t.Fatalf("16 MiB into an 8 MiB data dir: exit %d: %s; want exit %d saying disk full", code, msg, dfgetpkg.ExitDiskFull)
	}
	if !strings.Contains(full.logText(), "disk full") {
		t.Errorf("the daemon's log does not say disk full:\n%s", full.logText())
	}
	if n := metric(t, c.supernode, "pouch_supernode_failure_reports_total", nil); n != 0 {
		t.Errorf("the supernode received %v failure reports: a full disk blamed a parent", n)
	}
	if n := metric(t, full, "pouch_dfdaemon_back_to_source_total", nil); n != 0 {
		t.Errorf("the full node went to the origin %v times", n)
	}
	if got := o.Sent.Load(); got != int64(len(small)+len(big)) {
		t.Errorf("the origin sent %d bytes, want each file once (%d)", got, len(small)+len(big))
	}

	before := metric(t, full, "pouch_dfdaemon_upload_bytes_total", nil)
	dfgetOK(ctx, t, c.daemons[0], o.URL+"/small", filepath.Join(out, "small-elsewhere"), small)
	if up := metric(t, full, "pouch_dfdaemon_upload_bytes_total", nil) - before; up < 1<<20 {
		t.Errorf("the full node uploaded %v bytes of the small file it holds; it must keep serving", up)
	}
}

// The supernode's own piece index is damaged while it is stopped. Started again, it says so once
// and serves both tasks: the blob it holds complete against its digest costs the origin a
// one-byte request (the seed learns again that the origin serves it without credentials), the
// file — which nothing it trusts can verify — one more fetch by the seed.
func TestBrokenSeedIndexIsRebuilt(t *testing.T) {
	blob, file := randomBytes(t, 12<<20), randomBytes(t, 8<<20)
	o := origin.NewFiles(t, map[string][]byte{"/blob": blob, "/file": file})
	c := startClusterWith(t, 2, []string{"--listen", freePort(t)})
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dfgetOK(ctx, t, c.daemons[0], o.URL+"/blob", filepath.Join(out, "blob"), blob, "--digest", sha(blob))
	dfgetOK(ctx, t, c.daemons[0], o.URL+"/file", filepath.Join(out, "file"), file)
	sent := o.Sent.Load()

	c.supernode.Kill()
	damage.PastMeta(t, filepath.Join(c.root, "sn", "pieces", "index.db"))
	c.restartSupernode(t)
	if n := strings.Count(c.supernode.logText(), "piece index damaged"); n != 1 {
		t.Errorf("the restarted supernode said %d times that its index was damaged, want once", n)
	}
	dfgetOK(ctx, t, c.daemons[1], o.URL+"/blob", filepath.Join(out, "blob on node 1"), blob, "--digest", sha(blob))
	if got := o.Sent.Load() - sent; got > 1 {
		t.Errorf("the origin sent %d bytes of the blob the seed held complete, want the 1-byte check", got)
	}
	dfgetOK(ctx, t, c.daemons[1], o.URL+"/file", filepath.Join(out, "file on node 1"), file)
	t.Logf("after the seed's index was rebuilt, the origin sent %d bytes (the file is %d)", o.Sent.Load()-sent, len(file))
	if got := o.Sent.Load() - sent; got > int64(len(file))+2 {
		t.Errorf("the origin sent %d bytes after the restart, want one copy of the file and two 1-byte checks (%d)", got, len(file)+2)
	}
}
