package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// TaskLookup finds the task a child asks for; *piece.Store is one.
type TaskLookup interface {
	// Task returns the task, or an error wrapping piece.ErrNotFound.
	Task(id digest.Digest) (*piece.Task, error)
	// Created returns a channel closed at the next creation of a task (see piece.Store.Created).
	Created() <-chan struct{}
}

// ServerConfig tunes the upload server.
type ServerConfig struct {
	Limiter *ratelimit.Limiter // the daemon's upload cap, shared by every child; nil = none
	Log     *zap.Logger
	// SuperSeed makes the server offer each child only a few pieces at a time, those sent least
	// often so far, instead of everything it holds: the seed then sends each piece about once
	// and the children trade the rest among themselves (BitTorrent's super-seeding). The
	// supernode's seed uses it; its upload is the scarcest in the cluster.
	SuperSeed bool
	// Digests sends each piece's digest with its have to the children that speak
	// ProtocolDigestsID. The supernode's seed sets it: it hashed every piece from the origin,
	// its children trust it as they trust the supernode (whose schedule names it the seed), and
	// a child then asks for a new piece as soon as it is offered, not once the digest has come
	// through the supernode (published when the piece is durable, then a sync's round trip).
	Digests bool
	// TaskWait is how long a hello for an unknown task waits for it to appear: the supernode may
	// name this peer as a parent a moment before the peer has created the task locally.
	TaskWait time.Duration
}

// Server answers piece requests from children out of a piece store.
type Server struct {
	h        host.Host
	tasks    TaskLookup
	cfg      ServerConfig
	uploaded atomic.Int64
	served   atomic.Int64
	streams  atomic.Int64 // children's streams being served, past the hello
	busy     busyClock    // time with at least one piece being sent

	// ctx is the server's lifetime: every stream's context derives from it, and Close ends it.
	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup // stream handlers and their request readers

	mu           sync.Mutex
	closed       bool // guards handlers.Add against Close's Wait
	supers       map[digest.Digest]*superState
	superPending atomic.Int64 // see superState.pending
	// superForeground counts the client streams (see SetBackground, superState.foreground).
	superForeground atomic.Int64
	superActive     atomic.Int64 // the streams that are not idle (superState.active)
	background      atomic.Pointer[BackgroundFunc]
	held            atomic.Pointer[HeldFunc]
}

// HeldFunc returns what a child already holds of a task, as far as the server's owner knows
// (nil: nothing known).
type HeldFunc func(child peer.ID, task digest.Digest) func(piece int) bool

// SetHeld tells a super-seeding server which pieces its children already hold — the supernode
// knows it from their registrations when it takes a task over or restarts — so that it never
// offers a child one of them: an offer the child does not take blocks one of its few slots
// at the seed until it expires, and a child that arrives holding half the task would wait
// that long for each pair of useful offers. The set is read once per stream. Nil: nothing is
// known.
func (s *Server) SetHeld(f HeldFunc) {
	if f == nil {
		s.held.Store(nil)
		return
	}
	s.held.Store(&f)
}

// BackgroundFunc reports whether a child's stream for a task only warms the child's cache (a
// preheat) rather than serving a pull a client waits for.
type BackgroundFunc func(child peer.ID, task digest.Digest) bool

// SetBackground tells a super-seeding server which streams are background: while any other
// stream is open, they hold together at most half of its pending offers, so that the pulls
// clients wait for keep the other half however many nodes a preheat warms; alone they may use
// all. Nil: every stream is a client's.
func (s *Server) SetBackground(f BackgroundFunc) {
	if f == nil {
		s.background.Store(nil)
		return
	}
	s.background.Store(&f)
}

// NewServer registers the piece protocol on h.
func NewServer(h host.Host, tasks TaskLookup, cfg ServerConfig) *Server {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.TaskWait == 0 {
		cfg.TaskWait = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{h: h, tasks: tasks, cfg: cfg, ctx: ctx, cancel: cancel}
	h.SetStreamHandler(ProtocolID, s.handle)
	h.SetStreamHandler(ProtocolDigestsID, s.handle)
	return s
}

// Close stops accepting piece streams, stops the uploads in flight (their streams are reset)
// and waits for their handlers to return, so that none reads from the store after it closes.
// It is idempotent.
func (s *Server) Close() {
	s.h.RemoveStreamHandler(ProtocolID)
	s.h.RemoveStreamHandler(ProtocolDigestsID)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.handlers.Wait()
}

// enter counts a stream handler in, unless the server is closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

// Uploaded is the number of piece bytes sent so far.
func (s *Server) Uploaded() int64 { return s.uploaded.Load() }

// BusySeconds is the time, in seconds, during which at least one piece was being sent: the
// upload is idle the rest of the time, because no child asked this server for anything.
func (s *Server) BusySeconds() float64 { return s.busy.seconds(time.Now()) }

// PiecesServed is the number of pieces sent so far.
func (s *Server) PiecesServed() int64 { return s.served.Load() }

// Streams is the number of children's streams being served now (one per child and task).
func (s *Server) Streams() int64 { return s.streams.Load() }

func (s *Server) handle(st network.Stream) {
	if !s.enter() {
		st.Reset()
		return
	}
	defer s.handlers.Done()
	defer st.Close()
	// Closing the server resets the stream: that unblocks a write to a stalled child and the
	// request reader below.
	defer context.AfterFunc(s.ctx, func() { st.Reset() })()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	log := s.cfg.Log.With(zap.Stringer("child", st.Conn().RemotePeer()))
	r := bufio.NewReaderSize(st, 4<<10)
	w := bufio.NewWriterSize(st, 64<<10)
	_ = st.SetReadDeadline(time.Now().Add(30 * time.Second))
	id, err := readHello(r)
	if err != nil {
		st.Reset()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	task, err := s.waitTask(ctx, id)
	if err != nil {
		if s.ctx.Err() != nil {
			st.Reset()
			return
		}
		_ = writeFrame(w, msgError, []byte(err.Error()))
		_ = w.Flush()
		return
	}

	s.streams.Add(1)
	defer s.streams.Add(-1)

	// Requests are read on their own goroutine so that haves keep flowing while a piece is sent.
	reqs := make(chan int, 64)
	s.handlers.Add(1) // inside the handler's own count, so never racing Close's Wait
	go func() {
		defer s.handlers.Done()
		defer cancel()
		defer close(reqs)
		for {
			typ, n, err := readHeader(r)
			if err != nil {
				return
			}
			if typ != msgRequest {
				log.Debug("protocol violation", zap.Uint8("type", typ))
				return
			}
			i, err := readIndex(r, n)
			if err != nil {
				return
			}
			select {
			case reqs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()

	var ann announcer = &fullAnnouncer{task: task}
	if s.cfg.SuperSeed {
		ss := s.superSeed(task)
		child := st.Conn().RemotePeer()
		sa := &superAnnouncer{task: task, st: ss, offers: map[int]time.Time{}, quota: picker.SeedOffers, background: func() bool {
			f := s.background.Load()
			return f != nil && (*f)(child, id)
		}}
		if f := s.held.Load(); f != nil {
			sa.held = (*f)(child, id)
		}
		ann = sa
	}
	defer ann.close()
	changed := task.Changed()
	initial := ann.initial()
	bf := initial.Bytes()
	payload := make([]byte, 4+len(bf))
	binary.BigEndian.PutUint32(payload, uint32(initial.Len()))
	copy(payload[4:], bf)
	if writeFrame(w, msgBitfield, payload) != nil || w.Flush() != nil {
		st.Reset()
		return
	}
	tick := time.NewTicker(superSeedTick)
	defer tick.Stop()
	digests := s.cfg.Digests && st.Protocol() == ProtocolDigestsID
	announce := func() bool {
		for _, i := range ann.update(time.Now()) {
			if writeHave(w, task, i, digests) != nil {
				return false
			}
		}
		return w.Flush() == nil
	}
	if !announce() {
		st.Reset()
		return
	}
	for {
		select {
		case <-changed:
			changed = task.Changed()
		case <-tick.C:
		case i, ok := <-reqs:
			if !ok {
				return
			}
			ann.requested(i, time.Now())
			if err := s.sendPiece(ctx, st, w, task, i); err != nil {
				log.Debug("upload stopped", zap.Int("piece", i), zap.Error(err))
				st.Reset()
				return
			}
			ann.sent(i)
		case <-task.Done():
			return
		case <-ctx.Done():
			return
		}
		if !announce() {
			st.Reset()
			return
		}
	}
}

// writeHave announces piece i, with its digest when digests is set.
func writeHave(w *bufio.Writer, task *piece.Task, i int, digests bool) error {
	if d := task.Digest(i); digests && d != "" {
		payload := make([]byte, 4, 4+len(d))
		binary.BigEndian.PutUint32(payload, uint32(i))
		return writeFrame(w, msgHaveDigest, append(payload, d...))
	}
	return writeIndex(w, msgHave, i)
}

func (s *Server) sendPiece(ctx context.Context, st network.Stream, w *bufio.Writer, task *piece.Task, i int) error {
	sr, err := task.PieceReader(i)
	if err != nil {
		if werr := writeIndex(w, msgReject, i); werr != nil {
			return werr
		}
		return w.Flush()
	}
	task.Touch()
	s.busy.enter(time.Now())
	defer func() { s.busy.leave(time.Now()) }()
	n := sr.Size()
	// Whatever the writer holds (haves) goes first, so that every write below is whole frames
	// of the muxer (see sendChunk).
	if err := w.Flush(); err != nil {
		return err
	}
	bp := sendBufs.Get().(*[]byte)
	defer sendBufs.Put(bp)
	buf := *bp
	buf[0] = msgPiece
	l := uint32(4 + n)
	buf[1], buf[2], buf[3], buf[4] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
	buf[5], buf[6], buf[7], buf[8] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	// A stalled child must not hold an upload slot forever.
	_ = st.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	defer st.SetWriteDeadline(time.Time{})
	// The piece is read in large chunks straight into the buffer that is written, the frame
	// header in front of the first: the bufio.Writer is empty, so it passes each whole chunk
	// through to the stream without copying it. The upload cap is waited for a chunk at a time
	// (the limiter's burst holds one), not through its Writer, whose 64 KiB writes would split
	// into yamux frames of 65,524 and 12 bytes again.
	head, copied := piecePrefix, int64(0)
	for copied < n {
		k, err := sr.ReadAt(buf[head:min(int64(len(buf)), int64(head)+n-copied)], copied)
		if k == 0 && err != nil {
			s.uploaded.Add(copied)
			return fmt.Errorf("piece %d: read at %d: %w", i, copied, err)
		}
		if err := s.cfg.Limiter.Wait(ctx, head+k); err != nil {
			s.uploaded.Add(copied)
			return err
		}
		if _, err := w.Write(buf[:head+k]); err != nil {
			s.uploaded.Add(copied)
			return err
		}
		copied += int64(k)
		head = 0
	}
	s.uploaded.Add(copied)
	s.served.Add(1)
	return w.Flush()
}

// busyClock adds up the time during which at least one of several concurrent activities runs.
type busyClock struct {
	mu      sync.Mutex
	running int
	since   time.Time     // when running became non-zero
	total   time.Duration // over the closed periods
}

func (c *busyClock) enter(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running == 0 {
		c.since = now
	}
	c.running++
}

func (c *busyClock) leave(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running--; c.running == 0 {
		c.total += now.Sub(c.since)
	}
}

// seconds is the busy time up to now, the running period included.
func (c *busyClock) seconds(now time.Time) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.total
	if c.running > 0 {
		t += now.Sub(c.since)
	}
	return t.Seconds()
}

// piecePrefix is the piece frame's header: type, length, index.
const piecePrefix = 9

// sendChunk is how much of a piece is read and written at once: four whole yamux frames of
// the default 64 KiB message size (12 bytes of header, the rest payload), each of which TLS
// sends as exactly four full 16 KiB records. A 64 KiB write would leave a 12-byte frame behind
// every full one, and with it a record and a system call on each end.
const sendChunk = 4 * (64<<10 - 12)

var sendBufs = sync.Pool{New: func() any { b := make([]byte, sendChunk); return &b }}

// waitTask returns the task a child asked for, waiting up to TaskWait for it to be created:
// the supernode may name this peer as a parent a moment before the peer creates the task.
// It gives up early when the stream's ctx ends, which Server.Close does.
func (s *Server) waitTask(ctx context.Context, id digest.Digest) (*piece.Task, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("bad task id: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TaskWait)
	defer cancel()
	for {
		created := s.tasks.Created() // before the lookup, so a creation in between wakes us
		t, err := s.tasks.Task(id)
		if err == nil || !errors.Is(err, piece.ErrNotFound) {
			return t, err
		}
		select {
		case <-created:
		case <-ctx.Done():
			return nil, err
		}
	}
}
