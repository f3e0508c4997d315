package status_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/supernode/status"
)

// chromium finds Debian's chromium (CI installs it), or the binary POUCH_CHROMIUM names.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POUCH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (Debian package chromium; or set POUCH_CHROMIUM): the status page is not driven in a browser")
	return ""
}

// A person opens the status page in a browser while a download and a preheat job run: it logs
// in with the admin token (as the Basic password), sees the task downloading, the dfdaemon among
// the peers and the job running, and then, without reloading, sees it done once the origin lets the rest through. The
// screenshot of the running download is saved as status-page.png in the test's artifact
// directory (go test -artifacts -outputdir DIR keeps it).
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real Chromium")
	}
	path := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := startRunning(t, ctx)
	// Until the dfdaemon has reported bytes from the seed, so that the page shows throughput.
	waitTask(t, ctx, r, func(task status.Task) bool { return task.Downloading == 1 && task.SeedBytes > 0 })
	// And a preheat job, which the stalled origin keeps running too.
	job, err := snapi.NewAdminClient(r.sn.URL(), adminToken).CreatePreheat(ctx, snapi.PreheatRequest{Type: snapi.PreheatFile, URL: r.origin + "/datasets/train.tar"})
	if err != nil {
		t.Fatal(err)
	}

	// The flags this machine needs: no sandbox as root, no background connections (the network
	// is closed), a fresh profile.
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	row := `#tasks tbody tr[data-task="` + r.task.String() + `"]`
	peer := chromedp.CSS(`#peers tbody tr[data-peer="` + r.daemon.PeerID() + `"]`)
	if _, err := chromedp.Call(browser, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	if _, err := chromedp.Call(browser, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": basicAuth()}}); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(browser,
		chromedp.Navigate(r.sn.URL()+"/"),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-state="downloading"]`)),
		chromedp.WaitVisible(peer),
		chromedp.WaitVisible(chromedp.CSS(`#preheats tbody tr[data-job="`+job.ID+`"][data-state="RUNNING"]`)),
	)
	if err != nil {
		t.Fatalf("the running download never showed on the page: %v", err)
	}
	health, err := chromedp.Run(browser, chromedp.AttributeValue(peer, "data-health"))
	if err != nil {
		t.Fatal(err)
	}
	page, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.ArtifactDir(), "status-page.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the running download: %s", out)
	if health.Value != "ok" {
		t.Errorf("the dfdaemon's health on the page: %q", health.Value)
	}
	if strings.Contains(page, secretSig) || !strings.Contains(page, "REDACTED") {
		t.Errorf("the page must show the signed URL redacted:\n%s", page)
	}
	if !strings.Contains(page, "ready") {
		t.Errorf("the page does not say the supernode is ready:\n%s", page)
	}

	r.release()
	if err := <-r.done; err != nil {
		t.Fatalf("download: %v", err)
	}
	if err := chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS(row+`[data-state="done"]`))); err != nil {
		t.Fatalf("the page never showed the task done: %v", err)
	}
}
