package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// loadGen plays many peers against one supernode through its real peer API (internal/snapi):
// every simulated peer has its own libp2p identity and signs its own calls, as a dfdaemon does,
// but downloads nothing. It heartbeats, registers for each task in turn, and syncs every
// SyncInterval, reporting the pieces it would have received at DownloadRate and the bytes each
// parent of its last schedule sent, until it reports itself complete; then it moves on to the
// next task, as a node pulling an image's layers does. It measures what the peers see: the
// time of every register and sync call.
type loadGen struct {
	cfg  LoadConfig
	urls []string // one origin URL per task
	// calls bounds the calls in flight to Conns, so that the shared transport never holds more
	// connections than it keeps idle (a real dfdaemon keeps its own one alive), and a call is
	// timed from when it may go: waiting here is the generator's, not the supernode's.
	calls chan struct{}
	peers []*loadPeer
	tasks []loadTask // filled by warm

	mu       sync.Mutex
	register []float64 // seconds per call, as the peer saw it
	sync     []float64

	heartbeats, errs atomic.Int64
	bytes            atomic.Int64 // simulated piece bytes the peers reported receiving
	peerParents      atomic.Int64 // schedules that named a parent other than the seed
	firstErr         atomic.Pointer[error]
}

type loadPeer struct {
	self   snapi.Peer
	client *snapi.Client
}

// loadTask is what the warm-up learnt of one task.
type loadTask struct {
	url       string
	id        digest.Digest
	length    int64
	pieceSize int64
	pieces    int
}

// newLoadGen makes cfg.Peers identities (Ed25519 keys) talking to base, sharing cfg.Conns HTTP
// connections: one per peer, as real dfdaemons hold, would measure the generator's sockets
// as much as the supernode's scheduling.
func newLoadGen(cfg LoadConfig, base, origin, secret string) (*loadGen, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = cfg.Conns, cfg.Conns
	shared := &http.Client{Timeout: 2 * time.Minute, Transport: tr}
	g := &loadGen{cfg: cfg, calls: make(chan struct{}, cfg.Conns)}
	for i := range cfg.Tasks {
		g.urls = append(g.urls, fmt.Sprintf("%s/load/task-%d", origin, i))
	}
	for i := range cfg.Peers {
		s, err := peerauth.GenerateSigner(secret)
		if err != nil {
			return nil, err
		}
		c := snapi.NewClient(base, snapi.ClientConfig{Signer: s})
		c.HTTP = shared
		// The address is never dialled (nobody fetches from a simulated peer); it only has to
		// be a multiaddr the supernode can hand to the peer's children.
		addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+i%40000)
		g.peers = append(g.peers, &loadPeer{self: snapi.Peer{ID: s.Peer(), Addrs: []string{addr}, UploadRate: cfg.DownloadRate}, client: c})
	}
	return g, nil
}

// warm makes the supernode's seed fetch every task, with one extra peer per task that registers,
// long-polls until every piece digest is known, and leaves: the load then measures scheduling,
// not the seed's fetch.
func (g *loadGen) warm(ctx context.Context, secret string) error {
	g.tasks = make([]loadTask, len(g.urls))
	for i, u := range g.urls {
		s, err := peerauth.GenerateSigner(secret)
		if err != nil {
			return err
		}
		c := snapi.NewClient(g.peers[0].client.Base, snapi.ClientConfig{Signer: s})
		self := snapi.Peer{ID: s.Peer(), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
		register := func() (snapi.TaskInfo, error) {
			reg, err := c.Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: u}, Peer: self})
			return reg.Task, err
		}
		info, err := register()
		if err != nil {
			return fmt.Errorf("load: warm task %d: %w", i, err)
		}
		for !info.SeedDone {
			resp, err := c.Sync(ctx, snapi.SyncRequest{Task: info.ID, Peer: self.ID, DigestsFrom: len(info.Digests), WaitMillis: 2000})
			var se *snapi.StatusError
			if errors.As(err, &se) && se.Err.Code == apierr.CodeNotFound {
				// Expired while it waited (a PeerTTL shorter than the long-poll): join again.
				resp.Task, err = register()
			}
			if err != nil {
				return fmt.Errorf("load: warm task %d: %w", i, err)
			}
			info = resp.Task
		}
		if err := c.Leave(ctx, snapi.LeaveRequest{Task: info.ID, Peer: self.ID}); err != nil {
			return fmt.Errorf("load: warm task %d: %w", i, err)
		}
		pieces := int((info.ContentLength + info.PieceSize - 1) / info.PieceSize)
		g.tasks[i] = loadTask{url: u, id: info.ID, length: info.ContentLength, pieceSize: info.PieceSize, pieces: pieces}
	}
	return nil
}

// run plays every peer through every task, the peers joining over Ramp (a rollout), and returns when
// each has reported every task complete or ctx ends. Failed calls are counted, not fatal: a
// supernode that cannot keep up shows in the figures.
func (g *loadGen) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range g.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g.cfg.Ramp > 0 && !lifecycle.Sleep(ctx, g.cfg.Ramp*time.Duration(i)/time.Duration(len(g.peers))) {
				return
			}
			g.play(ctx, i)
		}()
	}
	wg.Wait()
}

// play is one peer: tasks in turn, starting with task i mod Tasks so that every task has peers
// at every moment.
func (g *loadGen) play(ctx context.Context, i int) {
	p := g.peers[i]
	var nextBeat time.Time
	beat := func() {
		if now := time.Now(); now.After(nextBeat) {
			nextBeat = now.Add(g.cfg.Heartbeat)
			err := g.call(ctx, nil, func() error {
				_, err := p.client.Heartbeat(ctx, snapi.HeartbeatRequest{Peer: p.self})
				return err
			})
			if err != nil {
				g.fail(err)
			}
			g.heartbeats.Add(1)
		}
	}
	for j := range g.tasks {
		t := &g.tasks[(i+j)%len(g.tasks)]
		beat()
		var reg snapi.RegisterResponse
		err := g.call(ctx, &g.register, func() (err error) {
			reg, err = p.client.Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: t.url}, Peer: p.self})
			return err
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			g.fail(err)
			continue
		}
		g.parents(reg.Schedule)
		if !g.download(ctx, p, t, reg.Schedule.Parents, beat) {
			return
		}
	}
}

// download reports progress on t every SyncInterval until complete; false if ctx ended.
func (g *loadGen) download(ctx context.Context, p *loadPeer, t *loadTask, parents []snapi.Peer, beat func()) bool {
	began, last := time.Now(), time.Now()
	var reported int64
	// A random phase, as real peers register at random moments.
	first := time.Duration(rand.Int64N(int64(g.cfg.SyncInterval)) + 1)
	for wait := first; ; {
		if !lifecycle.Sleep(ctx, wait) {
			return false
		}
		wait = g.cfg.SyncInterval
		beat()
		now := time.Now()
		got := min(int64(now.Sub(began).Seconds()*float64(g.cfg.DownloadRate)), t.length)
		have := int(got / t.pieceSize)
		if got == t.length {
			have = t.pieces
		}
		bytes := min(int64(have)*t.pieceSize, t.length) - reported
		req := snapi.SyncRequest{Task: t.id, Peer: p.self.ID, Have: have, Complete: have == t.pieces, DigestsFrom: t.pieces}
		if bytes > 0 && len(parents) > 0 {
			// The pieces came from the parents of the last schedule, evenly.
			ms := now.Sub(last).Milliseconds()
			for k, par := range parents {
				share := bytes / int64(len(parents))
				if k == 0 {
					share += bytes % int64(len(parents))
				}
				req.Transfers = append(req.Transfers, snapi.Transfer{Parent: par.ID, Bytes: share, Millis: ms})
			}
		}
		var resp snapi.SyncResponse
		err := g.call(ctx, &g.sync, func() (err error) {
			resp, err = p.client.Sync(ctx, req)
			return err
		})
		if ctx.Err() != nil {
			return false
		}
		var se *snapi.StatusError
		if errors.As(err, &se) && se.Err.Code == apierr.CodeNotFound {
			// The supernode expired this peer (quiet for longer than its peer TTL): register
			// again, as a dfdaemon does, and report the progress at once.
			g.fail(err)
			err = g.call(ctx, &g.register, func() (err error) {
				_, err = p.client.Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: t.url}, Peer: p.self, Have: have})
				return err
			})
			if err == nil {
				wait = 0
				continue
			}
		}
		if err != nil {
			g.fail(err)
			continue
		}
		g.bytes.Add(bytes)
		reported, last, parents = reported+bytes, now, resp.Schedule.Parents
		g.parents(resp.Schedule)
		if req.Complete {
			return true
		}
	}
}

// call makes one call when fewer than Conns are in flight, and records its time into times
// (nil: not recorded) if it succeeded.
func (g *loadGen) call(ctx context.Context, times *[]float64, f func() error) error {
	select {
	case g.calls <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	err := f()
	d := time.Since(start).Seconds()
	<-g.calls
	if err == nil && times != nil {
		g.mu.Lock()
		*times = append(*times, d)
		g.mu.Unlock()
	}
	return err
}

func (g *loadGen) parents(s snapi.Schedule) {
	for _, p := range s.Parents {
		if !p.Seed {
			g.peerParents.Add(1)
			return
		}
	}
}

func (g *loadGen) fail(err error) {
	if g.errs.Add(1) == 1 {
		g.firstErr.Store(&err)
	}
}

// err is the first failed call, with how many failed; nil if none did.
func (g *loadGen) err() error {
	n := g.errs.Load()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d calls failed, the first: %w", ErrLoadCalls, n, *g.firstErr.Load())
}

// ErrLoadCalls is returned (with the figures) when some of the simulated peers' calls failed.
var ErrLoadCalls = errors.New("bench: load: supernode calls failed")
