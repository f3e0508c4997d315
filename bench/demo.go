package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// DemoConfig is the local cluster `make demo` runs.
type DemoConfig struct {
	BinDir     string // supernode, dfdaemon and pouch
	WorkDir    string // daemons' data and logs
	Nodes      int    // dfdaemons
	LayerBytes int64  // the random layer added to the busybox image
}

const demoRepo, demoTag = "demo/busybox", "latest"

// Demo starts an embedded registry holding a runnable image (busybox plus a large random
// layer), a supernode and cfg.Nodes dfdaemons on loopback; pulls the image through every node's
// registry mirror at the same moment, checking every blob's digest; prints the time per node and
// what the registry sent per layer; and, when containerd and runc are installed and it runs as
// root, runs the image once with `pouch run` through node 0's mirror on a private containerd.
// Like the daemons, pouch runs as a process and is reached through its command line only.
func Demo(ctx context.Context, cfg DemoConfig, w io.Writer) error {
	img, err := image.Busybox(1, cfg.LayerBytes)
	if err != nil {
		return err
	}
	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := img.Push(ctx, reg.URL, demoRepo, demoTag, "", ""); err != nil {
		return err
	}
	blobs := img.Blobs()
	var total int64
	for _, b := range blobs {
		total += int64(len(b.Data))
	}
	fmt.Fprintf(w, "origin: embedded registry at %s holding %s/%s:%s (%d blobs, %s)\n",
		reg.URL, reg.Host, demoRepo, demoTag, len(blobs), units.BytesSize(float64(total)))

	logs := filepath.Join(cfg.WorkDir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	common := []string{"--listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-networks", "127.0.0.0/8", "--log-level", "warn"}
	sn, err := startProc(ctx, cfg.BinDir, logs, "supernode", "supernode", append([]string{"--data-dir", filepath.Join(cfg.WorkDir, "supernode")}, common...)...)
	if err != nil {
		return err
	}
	procs = append(procs, sn)
	daemons := make([]*proc, cfg.Nodes)
	for i := range daemons {
		daemons[i], err = startProc(ctx, cfg.BinDir, logs, fmt.Sprintf("dfdaemon%d", i), "dfdaemon", append([]string{
			"--supernode", "http://" + sn.HTTP, "--data-dir", filepath.Join(cfg.WorkDir, fmt.Sprintf("node%d", i)),
			"--registry-insecure", reg.Host}, common...)...)
		if err != nil {
			return err
		}
		procs = append(procs, daemons[i])
	}
	fmt.Fprintf(w, "cluster: supernode at %s, %d dfdaemons (registry mirrors) on loopback; logs in %s\n\n", sn.HTTP, cfg.Nodes, logs)

	// Every node pulls at the same moment, the way containerd does through its mirror.
	took := make([]time.Duration, cfg.Nodes)
	errs := make([]error, cfg.Nodes)
	start := time.Now()
	parallel(cfg.Nodes, cfg.Nodes, func(i int) error {
		errs[i] = PullImage(ctx, "http://"+daemons[i].HTTP, reg.Host, demoRepo, demoTag, img)
		took[i] = time.Since(start)
		return nil
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tpull time\tover P2P\tfrom origin\tdigests\t")
	for i, d := range daemons {
		m, err := d.metrics(ctx)
		if err != nil {
			return err
		}
		status := "ok"
		if errs[i] != nil {
			status = errs[i].Error()
		}
		fmt.Fprintf(tw, "%d\t%.2fs\t%s\t%s\t%s\t\n", i, took[i].Seconds(),
			units.BytesSize(m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"})),
			units.BytesSize(m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "origin"})), status)
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "blob\tsize\tregistry sent\t× size\t")
	var sent int64
	for _, b := range blobs {
		n := reg.BlobBytes(b.Digest)
		sent += n
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t\n", b.Digest.Encoded()[:12], units.BytesSize(float64(len(b.Data))), units.BytesSize(float64(n)), float64(n)/float64(len(b.Data)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d pulls of %s: the registry sent %s, %.2f× the image (every node from the origin: %d.00×)\n",
		cfg.Nodes, units.BytesSize(float64(total)), units.BytesSize(float64(sent)), float64(sent)/float64(total), cfg.Nodes)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	ref := reg.Host + "/" + demoRepo + ":" + demoTag
	fmt.Fprintf(w, "\npouch run --rm %s (containerd through node 0's mirror):\n", ref)
	if why := containerd.Missing(containerd.Containerd1); why != "" {
		fmt.Fprintf(w, "  skipped: %s\n", why)
		return nil
	}
	ctd, err := containerd.Start(containerd.Containerd1)
	if err != nil {
		return err
	}
	defer ctd.Stop()
	hosts := filepath.Join(cfg.WorkDir, "certs.d")
	pouch := func(stdout io.Writer, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(cfg.BinDir, "pouch"), append([]string{"--address", ctd.Address, "--hosts-dir", hosts}, args...)...)
		cmd.Stdout, cmd.Stderr = stdout, prefixed{w}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("pouch %s: %w", args[0], err)
		}
		return nil
	}
	// mirror setup prints how to configure a system containerd: not the demo's concern.
	if err := pouch(io.Discard, "mirror", "setup", "--mirror", "http://"+daemons[0].HTTP, "--registry", "http://"+reg.Host); err != nil {
		return err
	}
	return pouch(prefixed{w}, "run", "--rm", ref)
}

type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, "  "+line)
		}
	}
	return len(b), nil
}
