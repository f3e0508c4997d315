package snapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
)

// PathPreheats is the operator's preheat API: POST creates a job, GET lists them (newest
// first), GET PathPreheats/{id} shows one, DELETE PathPreheats/{id} cancels a running one.
const PathPreheats = "/api/v1/preheats"

// PreheatType says what a job warms.
type PreheatType string

// The types of preheat.
const (
	PreheatImage PreheatType = "image" // an image reference; its config and layers become tasks
	PreheatFile  PreheatType = "file"  // an http(s) URL; one task
)

// PreheatScope says where a job puts the content.
type PreheatScope string

// The scopes of preheat.
const (
	ScopeSeed     PreheatScope = "seed"      // the supernode's seed holds every piece
	ScopeAllPeers PreheatScope = "all-peers" // and every dfdaemon registered when the job started
)

// PreheatState is the state of a job or of one of its tasks.
type PreheatState string

// The states of a job and of its tasks. SUCCESS and FAILED are final.
const (
	StatePending PreheatState = "PENDING"
	StateRunning PreheatState = "RUNNING"
	StateSuccess PreheatState = "SUCCESS"
	StateFailed  PreheatState = "FAILED"
)

// Final says whether nothing will change the state any more.
func (s PreheatState) Final() bool { return s == StateSuccess || s == StateFailed }

// PreheatRequest creates a job. Headers, Username and Password are used for this job alone:
// the supernode never logs, stores or shows them.
type PreheatRequest struct {
	Type     PreheatType       `json:"type,omitempty"` // default: file for an http(s) URL, else image
	URL      string            `json:"url"`            // an image reference (registry.example:5000/app/web:1.4) or a URL
	Platform string            `json:"platform,omitempty"`
	Scope    PreheatScope      `json:"scope,omitempty"` // default seed
	Headers  map[string]string `json:"headers,omitempty"`
	Username string            `json:"username,omitempty"`
	Password string            `json:"password,omitempty"`
}

// PreheatJob is what the API shows of a job.
type PreheatJob struct {
	ID         string          `json:"id"`
	Type       PreheatType     `json:"type"`
	URL        string          `json:"url"` // query parameters that carry credentials are REDACTED
	Platform   string          `json:"platform,omitempty"`
	Scope      PreheatScope    `json:"scope"`
	State      PreheatState    `json:"state"`
	CreatedAt  time.Time       `json:"created_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Error      string          `json:"error,omitempty"`
	Progress   PreheatProgress `json:"progress"`
}

// PreheatProgress lists a job's tasks once the job knows them (an image's after resolution).
type PreheatProgress struct {
	Tasks []PreheatTask `json:"tasks"`
}

// PreheatTask is one piece of content of a job: for scope all-peers, PeersDone of PeersTotal
// dfdaemons hold it.
type PreheatTask struct {
	Digest     digest.Digest `json:"digest"` // the content digest, or the task ID of a file
	MediaType  string        `json:"media_type,omitempty"`
	Size       int64         `json:"size"`       // 0 until known (a file's, once the seed has asked the origin)
	SeedBytes  int64         `json:"seed_bytes"` // how much of it the seed holds
	State      PreheatState  `json:"state"`
	PeersDone  int           `json:"peers_done"`
	PeersTotal int           `json:"peers_total"`
	Error      string        `json:"error,omitempty"`
}

// PreheatAssignment asks a dfdaemon to download one task of a job (scope all-peers). It
// carries no credentials: the seed already holds the content.
type PreheatAssignment struct {
	Job    string        `json:"job"`
	Task   digest.Digest `json:"task"`
	URL    string        `json:"url"`
	Digest digest.Digest `json:"digest,omitempty"`
}

// PreheatResult is a dfdaemon's outcome of an assignment: Error is empty when it holds the
// whole content, verified.
type PreheatResult struct {
	Job   string        `json:"job"`
	Task  digest.Digest `json:"task"`
	Error string        `json:"error,omitempty"`
}

// HeartbeatResponse answers a heartbeat with every preheat assignment the peer has not
// reported on yet, from this supernode; an assignment missing from it is no longer wanted
// (its job was cancelled or has failed).
type HeartbeatResponse struct {
	Preheat []PreheatAssignment `json:"preheat,omitempty"`
}

// AdminClient calls the supernode's operator API with the admin token.
type AdminClient struct {
	Base  string // e.g. http://127.0.0.1:8002
	Token string // the supernode's --admin-token; empty: none (loopback only)
	HTTP  *http.Client
}

// NewAdminClient returns an admin client for base.
func NewAdminClient(base, token string) *AdminClient {
	return &AdminClient{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: time.Minute}}
}

// CreatePreheat starts a job and returns it as created (PENDING).
func (c *AdminClient) CreatePreheat(ctx context.Context, req PreheatRequest) (PreheatJob, error) {
	var out PreheatJob
	return out, c.do(ctx, http.MethodPost, PathPreheats, req, &out)
}

// Preheat returns one job.
func (c *AdminClient) Preheat(ctx context.Context, id string) (PreheatJob, error) {
	var out PreheatJob
	return out, c.do(ctx, http.MethodGet, PathPreheats+"/"+url.PathEscape(id), nil, &out)
}

// Preheats lists the jobs, newest first.
func (c *AdminClient) Preheats(ctx context.Context) ([]PreheatJob, error) {
	var out []PreheatJob
	return out, c.do(ctx, http.MethodGet, PathPreheats, nil, &out)
}

// CancelPreheat cancels a running job and returns it as it ended.
func (c *AdminClient) CancelPreheat(ctx context.Context, id string) (PreheatJob, error) {
	var out PreheatJob
	return out, c.do(ctx, http.MethodDelete, PathPreheats+"/"+url.PathEscape(id), nil, &out)
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e, _ := apierr.Read(resp)
		return &StatusError{Status: resp.StatusCode, Err: e}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("%w: bad answer from %s: %w", ErrUnavailable, path, err)
	}
	return nil
}
