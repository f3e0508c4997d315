package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
)

// TestDemo is `make demo` on a small image: every node pulls through its mirror, the registry
// sends each blob once, and (as root with containerd installed) pouch runs the image.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds and starts real supernode and dfdaemon processes")
	}
	if _, err := os.Stat(image.BusyboxPath); err != nil {
		t.Skip("the demo image is runnable: it needs /bin/busybox; apt-get install busybox-static")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfbench"), "demo", "--layer-size", "8MiB")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("dfbench demo: %v\n%s", err, out.String())
	}
	got := out.String()
	if !regexp.MustCompile(`the registry sent [0-9.]+ ?MiB, 1\.00× the image`).MatchString(got) {
		t.Errorf("the registry did not send the image exactly once:\n%s", got)
	}
	if strings.Count(got, " ok\n") != 3 {
		t.Errorf("want three nodes with every digest ok:\n%s", got)
	}
	if containerd.Missing(containerd.Containerd1) == "" && !strings.Contains(got, image.BusyboxOutput) {
		t.Errorf("containerd is here but pouch run did not print the image's greeting:\n%s", got)
	}
}
