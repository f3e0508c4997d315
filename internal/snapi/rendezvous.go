package snapi

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
)

// Ring is a fixed list of supernodes. Each task is homed on one of them by rendezvous
// (highest-random-weight) hashing, so every peer picks the same supernode for a task without
// any coordination, and when that one fails they all move to the same next one.
type Ring struct {
	clients []*Client
}

// NewRing parses a comma-separated list of supernode URLs; an empty list gives an empty ring.
// Every client shares cfg.
func NewRing(list string, cfg ClientConfig) *Ring {
	r := &Ring{}
	for _, u := range URLs(list) {
		r.clients = append(r.clients, NewClient(u, cfg))
	}
	return r
}

// URLs splits a comma-separated list of supernode URLs, dropping blanks.
func URLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// Len is the number of supernodes.
func (r *Ring) Len() int { return len(r.clients) }

// All returns every supernode, in configuration order.
func (r *Ring) All() []*Client { return r.clients }

// For returns the supernodes in the order a task tries them: highest weight first.
func (r *Ring) For(key string) []*Client {
	out := slices.Clone(r.clients)
	weight := func(c *Client) uint64 {
		h := sha256.Sum256([]byte(c.Base + "\x00" + key))
		return binary.BigEndian.Uint64(h[:8])
	}
	slices.SortFunc(out, func(a, b *Client) int {
		wa, wb := weight(a), weight(b)
		switch {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		}
		return 0
	})
	return out
}
