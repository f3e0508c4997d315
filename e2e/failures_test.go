package e2e

import (
	"context"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/piece"
)

// A parent dies in the middle of the transfer: every other node still finishes with a correct
// file.
func TestParentKilledMidTransfer(t *testing.T) {
	const size = 64 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/big.bin": data})
	// Caps make the transfer last several seconds so the kill lands in the middle of it.
	c := startClusterWith(t, 5, []string{"--upload-rate", "12MB"}, "--upload-rate", "12MB", "--download-rate", "12MB")
	out := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	finished := burst(ctx, c.daemons, o.URL+"/big.bin", out)
	// Kill the node that has uploaded most once the swarm is moving: it is surely a parent.
	victim := -1
	wait.Until(t, 30*time.Second, "a daemon to upload 8 MiB", func() bool {
		best := 0.0
		for i, d := range c.daemons {
			if up := metric(t, d, "pouch_dfdaemon_upload_bytes_total", nil); up > best && up > 8<<20 {
				victim, best = i, up
			}
		}
		return victim >= 0
	})
	if got := metric(t, c.daemons[victim], "pouch_dfdaemon_download_bytes_total", nil); got >= size {
		t.Fatalf("victim had already finished (%v bytes): the kill would not be mid-transfer", got)
	}
	t.Logf("killing %s mid-transfer", c.daemons[victim].Name)
	c.daemons[victim].Cmd.Process.Signal(syscall.SIGKILL)
	codes, msgs := finished()
	checkCopies(t, codes, msgs, out, data, victim)
	t.Logf("a parent killed mid-transfer: the origin sent %.2f copies", originCopies(o, 0, size))
}

// A parent serves corrupted pieces (its data file was damaged on disk): the child detects it,
// blocks that parent, fetches the pieces from someone else and ends with the right file.
func TestCorruptParentIsDetectedAndBlocked(t *testing.T) {
	const size = 32 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/big.bin": data})
	c := startCluster(t, 2)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if code, msg := dfget(ctx, o.URL+"/big.bin", "-O", filepath.Join(out, "a"), "--daemon", "http://"+c.daemons[0].HTTP); code != 0 {
		t.Fatalf("first download: exit %d: %s", code, msg)
	}
	// Damage one byte in every piece of node 0's copy.
	files, _ := filepath.Glob(filepath.Join(c.daemonDir(0), "pieces", "data", "*"))
	if len(files) != 1 {
		t.Fatalf("want one data file in node 0's store, found %v", files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(100); off < size; off += piece.SizeFor(size) {
		f.WriteAt([]byte{^data[off]}, off)
	}
	f.Close()

	if code, msg := dfget(ctx, o.URL+"/big.bin", "-O", filepath.Join(out, "b"), "--daemon", "http://"+c.daemons[1].HTTP); code != 0 {
		t.Fatalf("download next to a corrupt parent: exit %d: %s", code, msg)
	}
	if got := fileSHA(t, filepath.Join(out, "b")); got != sha(data) {
		t.Fatalf("node 1 content %s, want %s", got, sha(data))
	}
	if n := metric(t, c.daemons[1], "pouch_dfdaemon_corrupt_pieces_total", nil); n < 1 {
		t.Fatalf("node 1 detected %v corrupt pieces; it must have met node 0's", n)
	}
	if n := metric(t, c.supernode, "pouch_supernode_corrupt_reports_total", nil); n < 1 {
		t.Errorf("the supernode heard of %v corrupt pieces", n)
	}
	// Node 0 is blocked after its first bad piece: node 1 took at most a pipeline's worth from it.
	if up := metric(t, c.daemons[0], "pouch_dfdaemon_upload_bytes_total", nil); up > 4<<20 {
		t.Errorf("the corrupt node uploaded %v bytes; it should have been blocked after the first bad piece", up)
	}
	if o.Sent.Load() != size {
		t.Errorf("origin sent %d bytes, want %d (once)", o.Sent.Load(), size)
	}
}

// The supernode (and with it the seed) dies in the middle of a burst: every node still ends
// with a correct file, from its peers and then from the origin.
func TestSupernodeKilledMidTransfer(t *testing.T) {
	const size = 48 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/big.bin": data})
	c := startClusterWith(t, 3, []string{"--upload-rate", "10MB"}, "--upload-rate", "10MB", "--download-rate", "10MB", "--stall-timeout", "3s")
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := burst(ctx, c.daemons, o.URL+"/big.bin", out, "--digest", sha(data))
	waitBytes(t, c.daemons[0], 8<<20)
	c.supernode.Cmd.Process.Signal(syscall.SIGKILL)
	codes, msgs := wait()
	checkCopies(t, codes, msgs, out, data)
	t.Logf("the only supernode killed mid-transfer: the origin sent %.2f copies", originCopies(o, 0, size))
}
