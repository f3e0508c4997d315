package dfget

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/dfapi"
)

// OneShotConfig configures the dfdaemon that the one-shot peer runs in this process.
type OneShotConfig = dfdaemon.Config

// oneShot runs a dfdaemon inside this process for one download. It is dfget's only use of
// dfdaemon itself: the answer looks like the local API's (failures are *apierr.Error), and
// closing its body stops the daemon.
func oneShot(ctx context.Context, opts Options) (*dfapi.Download, error) {
	cfg := opts.OneShot
	cfg.Supernode, cfg.Listen, cfg.OneShot = opts.Supernode, "none", true
	cfg.Allow, cfg.Deny = opts.Networks.Allow, opts.Networks.Deny
	cfg.DataDir = opts.DataDir
	if cfg.P2PListen == "" {
		// Any interface: with a supernode on another host, the peer must announce an address
		// the other hosts reach (the library's loopback default would be refused); any port, so
		// that it never collides with the node's dfdaemon.
		cfg.P2PListen = "/ip4/0.0.0.0/tcp/0"
	}
	var tmp string
	if cfg.DataDir == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "dfget-"); err != nil {
			return nil, &Error{Code: ExitFailure, Err: err}
		}
		cfg.DataDir = tmp
	}
	d, err := dfdaemon.New(cfg, opts.Log)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, &Error{Code: ExitFailure, Err: err}
	}
	dctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(dctx); close(done) }()
	var x *dfdaemon.Download
	stop := func() {
		if x != nil {
			x.Close()
		}
		cancel()
		<-done
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
	x, err = d.Download(ctx, dfdaemon.Request{URL: opts.URL, Header: opts.Header, Digest: opts.Digest, Tag: opts.Tag})
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, dfdaemon.ErrNotShared) {
			// Private content of another origin: only the origin named here may answer.
			return direct(ctx, opts)
		}
		var de *dfdaemon.Error
		if errors.As(err, &de) {
			_, body := dfdaemon.APIError(de)
			return nil, classifyAPI(body)
		}
		return nil, &Error{Code: ExitFailure, Err: err}
	}
	body := &embedded{r: x.NewReader(ctx, 0), stop: stop}
	return &dfapi.Download{Body: body, Size: x.Size(), TaskID: x.TaskID()}, nil
}

// embedded is the one-shot peer's content: its failures turned into the API's error bodies,
// as a daemon's trailer would carry them.
type embedded struct {
	r    io.Reader
	stop func()
}

func (b *embedded) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var de *dfdaemon.Error
	if errors.As(err, &de) {
		_, body := dfdaemon.APIError(de)
		return n, &body
	}
	return n, err
}

func (b *embedded) Close() error {
	b.stop()
	return nil
}
