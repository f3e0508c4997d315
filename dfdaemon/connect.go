package dfdaemon

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	p2p "github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// preconnect opens libp2p connections to the parents of a registration's schedule while the
// download creates its local task, which needs none of them: the piece streams (connect) then
// open on connections already made. Creating the task is an index commit (5–10 ms on the loaded
// 2-core machine), and so is a cold connection (TCP, TLS, yamux): one after the other they were
// most of a lazy read's first byte (docs/benchmarks.md, "Where a lazy read's first byte goes").
// The returned stop ends the attempts still running and waits for them.
func (dl *download) preconnect(ctx context.Context, s snapi.Schedule) (stop func()) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var wg sync.WaitGroup
	dl.mu.Lock()
	for _, sp := range s.Parents {
		info, err := p2p.AddrInfo(sp.ID, sp.Addrs)
		if err != nil || info.ID == dl.d.host.ID() || dl.blocked[info.ID] ||
			dl.d.host.Network().Connectedness(info.ID) == network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A failure is not reported here: connect dials the parent again and reports it.
			_ = dl.d.host.Connect(ctx, info)
		}()
	}
	dl.mu.Unlock()
	return func() { cancel(); wg.Wait() }
}
