package status

import (
	"sync"
	"time"
)

// Window is the span a Meter's rate is measured over. Peers report their transfers in batches,
// every second or two, so a rate over a shorter span would jump between zero and twice the
// real one.
const Window = 10 * time.Second

// Meter counts bytes and tells their rate over the last Window, in one-second slots. The zero
// value is ready; it is safe for concurrent use.
type Meter struct {
	mu    sync.Mutex
	total int64
	slots [slots]int64
	at    int64 // the unix second of slots[at%slots]
}

const slots = int(Window / time.Second)

// Add counts n bytes at now.
func (m *Meter) Add(now time.Time, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now.Unix())
	m.slots[m.at%int64(slots)] += n
	m.total += n
}

// Total is every byte counted.
func (m *Meter) Total() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// Rate is the bytes per second over the Window before now.
func (m *Meter) Rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now.Unix())
	var sum int64
	for _, v := range m.slots {
		sum += v
	}
	return float64(sum) / Window.Seconds()
}

// advance moves the current slot to sec, clearing the slots passed over; the caller holds m.mu.
func (m *Meter) advance(sec int64) {
	if sec <= m.at {
		return
	}
	if sec-m.at >= int64(slots) {
		m.slots = [slots]int64{}
	} else {
		for s := m.at + 1; s <= sec; s++ {
			m.slots[s%int64(slots)] = 0
		}
	}
	m.at = sec
}
