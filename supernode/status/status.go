// Package status is the supernode's status page: an admin view, at "/", of the peers with their
// throughput and health, the tasks with their progress and bytes by source, and the preheat
// jobs, refreshed live by a little JavaScript that polls a JSON snapshot (PathStatus). The page,
// its script and style are plain files embedded in the binary: no CDN, no build step.
//
// It owns the page, the snapshot's shape and the byte meters the supernode keeps per peer; the
// supernode fills the snapshot. Everything it serves is behind httpx.Admin, and a snapshot
// carries no credentials: its URLs are redacted by the supernode (taskid.Redact) before they
// get here, and the page puts every value into the document as text, never as markup.
package status

import (
	"embed"
	"io/fs"
	"net/http"
	"time"

	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// PathStatus is the snapshot the page polls.
const PathStatus = "/api/v1/status"

// pollInterval is how often the page asks for a snapshot; the page reads it from the snapshot.
const pollInterval = 2 * time.Second

// Limits on a snapshot's lists: one supernode schedules thousands of peers, and the page is for
// a person. The totals say how many there are.
const (
	MaxPeers = 200 // the busiest first
	MaxTasks = 200 // the most recent first
)

// Status is one snapshot of the supernode.
type Status struct {
	Time        time.Time `json:"time"`
	PollSeconds float64   `json:"poll_seconds"`
	Supernode   Supernode `json:"supernode"`
	PeersTotal  int       `json:"peers_total"`
	Peers       []Peer    `json:"peers"`
	TasksTotal  int       `json:"tasks_total"`
	Tasks       []Task    `json:"tasks"`
	// Preheats are the preheat jobs, newest first, as the preheat API shows them.
	Preheats []snapi.PreheatJob `json:"preheats"`
}

// Supernode describes the supernode itself.
type Supernode struct {
	PeerID        string    `json:"peer_id"` // the seed's libp2p identity
	URL           string    `json:"url"`
	Started       time.Time `json:"started"`
	Ready         bool      `json:"ready"`
	NotReady      []string  `json:"not_ready,omitempty"` // the failing readiness checks
	OriginBytes   int64     `json:"origin_bytes"`        // fetched by the seed from origins
	SeedUpload    int64     `json:"seed_upload_bytes"`   // sent by the seed to peers
	SeedUploadBps float64   `json:"seed_upload_bps"`
}

// Health of a peer.
const (
	HealthOK      = "ok"      // heard from recently, no failures reported against it
	HealthLate    = "late"    // no sync or heartbeat for a while: it expires at the peer TTL
	HealthFailing = "failing" // its children reported failures against it recently
)

// Peer is one dfdaemon (or dfget's one-shot peer) the supernode schedules.
type Peer struct {
	ID       string   `json:"id"`
	Addrs    []string `json:"addrs"`
	OneShot  bool     `json:"one_shot,omitempty"`
	Health   string   `json:"health"`
	Why      string   `json:"why,omitempty"` // what makes it late or failing
	LastSeen float64  `json:"last_seen_seconds"`
	Tasks    int      `json:"tasks"`
	// Bytes as its children and itself report them: received from parents, sent to children,
	// in total and per second over the last Window.
	Received    int64   `json:"received_bytes"`
	Sent        int64   `json:"sent_bytes"`
	ReceiveBps  float64 `json:"receive_bps"`
	SendBps     float64 `json:"send_bps"`
	Failures    int     `json:"failures"` // failure reports against it that counted
	UploadLimit int64   `json:"upload_limit_bps,omitempty"`
}

// Task is one task: its content, how far the seed and the peers are, and where its bytes came
// from.
type Task struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"` // redacted
	Access      string    `json:"access,omitempty"`
	Size        int64     `json:"size"`
	Pieces      int       `json:"pieces"`
	SeedPieces  int       `json:"seed_pieces"`
	SeedDone    bool      `json:"seed_done"`
	Seeding     bool      `json:"seeding"` // the seed is fetching it from the origin now
	Error       string    `json:"error,omitempty"`
	Peers       int       `json:"peers"`
	Complete    int       `json:"peers_complete"`
	Downloading int       `json:"peers_downloading"`
	Created     time.Time `json:"created"`
	// Bytes by source: origin (fetched by the seed), seed and peer (received by peers from the
	// seed or from other peers, as they report it). Peers that go back to the origin themselves
	// do not report what they fetched there.
	OriginBytes int64 `json:"origin_bytes"`
	SeedBytes   int64 `json:"seed_bytes"`
	PeerBytes   int64 `json:"peer_bytes"`
}

//go:embed ui
var ui embed.FS

// Mount serves the page at "/", its script and style under /ui/, and the snapshot at
// PathStatus, every one behind admin. snapshot is called for each poll.
func Mount(mux *http.ServeMux, admin httpx.Admin, snapshot func() Status) {
	files, _ := fs.Sub(ui, "ui") // cannot fail: ui is embedded
	guard := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !admin.Allow(w, r) {
				return
			}
			secure(w.Header())
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /{$}", guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "index.html")
	})))
	mux.Handle("GET /ui/", guard(http.StripPrefix("/ui/", http.FileServerFS(files))))
	mux.Handle("GET "+PathStatus, guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := snapshot()
		st.PollSeconds = pollInterval.Seconds()
		httpx.WriteJSON(w, http.StatusOK, st)
	})))
}

// secure sets the headers of every answer: the page loads only its own script and style and
// talks only to its own origin, is never framed, and nothing is cached (it is a live view of an
// admin API).
func secure(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
