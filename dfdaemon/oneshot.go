package dfdaemon

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/pouch-p2p/pouch/internal/dfapi"
)

// OneShotConfig is the daemon that dfget's one-shot peer runs (dfapi.OneShot): no local
// listener (the API is served on dfget's connection, ServeConn), no DHT, never a preheat
// target, libp2p on any interface and any port. With a supernode on another host the peer must
// announce an address the other hosts reach (the library's loopback default would be refused);
// any port, so that it never collides with the node's own dfdaemon.
func OneShotConfig(o dfapi.OneShot) Config {
	return Config{
		Supernode: o.Supernode, SupernodeCA: o.SupernodeCA, Secret: o.Secret, DataDir: o.DataDir,
		Allow: o.Allow, Deny: o.Deny,
		Listen: "none", P2PListen: "/ip4/0.0.0.0/tcp/0", OneShot: true,
	}
}

// ServeConn runs the daemon with its local API served on conn alone, the one client it lives
// for, until that client closes the connection or ctx ends; then it closes the daemon.
func (d *Daemon) ServeConn(ctx context.Context, conn net.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler: localOnly(withRequestID(d.mux)),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				cancel() // the client is gone: nothing more to serve
			}
		},
	}
	served := make(chan struct{})
	go func() { srv.Serve(&connListener{conn: conn, closed: make(chan struct{})}); close(served) }()
	err := d.Run(ctx)
	srv.Close()
	<-served
	return err
}

// connListener accepts one connection, then none until it is closed.
type connListener struct {
	mu     sync.Mutex
	conn   net.Conn // nil once accepted
	closed chan struct{}
	once   sync.Once
}

func (l *connListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

// Close also closes the connection if it was never accepted; once accepted, it is the server's.
func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.UnixAddr{Name: "dfget", Net: "unix"} }
