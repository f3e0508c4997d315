// Package registry runs distribution's registry in-process, on a loopback port with in-memory
// storage, as the origin for tests, `make demo` and dfbench. It can require basic auth
// (htpasswd) or bearer tokens from an embedded token server, and it counts what it serves so a
// test can check that the cluster fetched each layer from the origin exactly once.
//
// It is test and demo infrastructure: it must never be used to store anything that matters.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	digest "github.com/opencontainers/go-digest"
	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	// Storage and auth back-ends register themselves with distribution by name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Options configures the embedded registry. The zero value is an open registry.
type Options struct {
	// Htpasswd maps users to passwords. Non-empty enables basic auth (htpasswd file written
	// with bcrypt), or, with Token, the users the token server accepts.
	Htpasswd map[string]string
	// Token enables bearer-token auth: the registry answers 401 with WWW-Authenticate: Bearer
	// realm=<embedded token server>,service=...,scope=...; the token server issues tokens for
	// users in Htpasswd and anonymous pull tokens only for repositories listed in Public.
	Token bool
	// Listen is the address to serve on (default 127.0.0.1:0).
	Listen string
	// BlobRate caps the bytes per second of blob bodies over all connections together (an
	// origin of limited bandwidth, for dfbench's baseline); 0 = none.
	BlobRate int64
	// Public lists the repositories anonymous clients may pull when auth is on.
	Public []string
	Log    *zap.Logger
}

// Service is the token audience the registry accepts.
const Service = "pouch-registry"

// Registry is a running embedded registry.
type Registry struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT

	srv      *http.Server
	dir      string
	cancel   context.CancelFunc
	log      *zap.Logger
	requests atomic.Int64
	total    atomic.Int64
	mu       sync.Mutex
	blobs    map[digest.Digest]int64
	public   map[string]bool
	limit    *ratelimit.Limiter
	anonAuth string // basic mode: the hidden account anonymous pulls of public repositories use
	tokens   *tokenServer
}

var quietOnce sync.Once

// Start serves a new registry on 127.0.0.1 with a free port.
//
// Distribution logs every request, and every refused or unknown one at warning and error
// level, through logrus' standard logger, which cannot be replaced per app. Start silences that
// logger (level fatal), once per process, if nobody changed its level from the default.
func Start(ctx context.Context, opts Options) (*Registry, error) {
	quietOnce.Do(func() {
		if logrus.GetLevel() == logrus.InfoLevel {
			logrus.SetLevel(logrus.FatalLevel)
		}
	})
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("registry")
	if opts.Token && len(opts.Htpasswd) == 0 && len(opts.Public) == 0 {
		return nil, errors.New("registry: token auth needs users (Htpasswd) or public repositories")
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("registry: listen: %w", err)
	}
	dir, err := os.MkdirTemp("", "pouch-registry-")
	if err != nil {
		ln.Close()
		return nil, err
	}
	r := &Registry{
		Host: ln.Addr().String(), dir: dir, log: log,
		blobs: map[digest.Digest]int64{}, public: map[string]bool{}, limit: ratelimit.New(opts.BlobRate),
	}
	r.URL = "http://" + r.Host
	for _, p := range opts.Public {
		r.public[p] = true
	}
	fail := func(err error) (*Registry, error) {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}

	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory":    configuration.Parameters{},
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = randomHex(16)
	switch {
	case opts.Token:
		tokens, jwks, err := newTokenServer(dir, r.URL, opts.Htpasswd, r.public)
		if err != nil {
			return fail(err)
		}
		r.tokens = tokens
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm": r.URL + "/token", "service": Service, "issuer": tokens.issuer, "jwks": jwks,
		}}
	case len(opts.Htpasswd) > 0:
		users := opts.Htpasswd
		if len(r.public) > 0 {
			users = map[string]string{}
			for u, p := range opts.Htpasswd {
				users[u] = p
			}
			user, pass := "anonymous-"+randomHex(4), randomHex(16)
			users[user] = pass
			r.anonAuth = basicAuth(user, pass)
		}
		path := filepath.Join(dir, "htpasswd")
		if err := writeHtpasswd(path, users); err != nil {
			return fail(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "pouch-registry", "path": path}}
	}

	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	var app http.Handler
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("registry: %v", p)
			}
		}()
		app = handlers.NewApp(actx, cfg)
	}()
	if err != nil {
		cancel()
		return fail(err)
	}
	mux := http.NewServeMux()
	if r.tokens != nil {
		mux.Handle("/token", r.tokens)
	}
	mux.Handle("/", r.count(app))
	r.srv = &http.Server{Handler: r.countRequests(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("registry stopped", zap.Error(err))
		}
	}()
	log.Debug("serving", zap.String("url", r.URL), zap.Bool("token", opts.Token), zap.Int("users", len(opts.Htpasswd)))
	return r, nil
}

// Close stops the server and removes its files.
func (r *Registry) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if err != nil {
		err = r.srv.Close()
	}
	r.cancel()
	if rerr := os.RemoveAll(r.dir); err == nil {
		err = rerr
	}
	return err
}

// BlobBytes is the number of body bytes sent for GETs of blob d.
func (r *Registry) BlobBytes(d digest.Digest) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobs[d]
}

// TotalBlobBytes is the number of body bytes sent for GETs of all blobs.
func (r *Registry) TotalBlobBytes() int64 { return r.total.Load() }

// Requests is the number of HTTP requests served, token requests included.
func (r *Registry) Requests() int64 { return r.requests.Load() }

func (r *Registry) countRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		h.ServeHTTP(w, req)
	})
}

// count wraps the registry app: it counts blob body bytes, and in basic-auth mode lets
// anonymous clients pull public repositories.
func (r *Registry) count(app http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, kind, ref := splitPath(req.URL.Path)
		if r.anonAuth != "" && req.Header.Get("Authorization") == "" && r.public[name] &&
			(req.Method == http.MethodGet || req.Method == http.MethodHead) {
			req.Header.Set("Authorization", r.anonAuth)
		}
		if kind != "blobs" || req.Method != http.MethodGet {
			app.ServeHTTP(w, req)
			return
		}
		cw := &countingWriter{ResponseWriter: w, out: r.limit.Writer(req.Context(), w)}
		app.ServeHTTP(cw, req)
		if cw.status/100 != 2 {
			return
		}
		r.total.Add(cw.n)
		r.mu.Lock()
		r.blobs[digest.Digest(ref)] += cw.n
		r.mu.Unlock()
	})
}

// splitPath splits /v2/<name>/<kind>/<ref> into its parts ("" when it is another path).
func splitPath(p string) (name, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	for _, k := range []string{"/blobs/", "/manifests/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			return rest[:i], strings.Trim(k, "/"), rest[i+len(k):]
		}
	}
	if n, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return n, "tags", ""
	}
	return "", "", ""
}

type countingWriter struct {
	http.ResponseWriter
	out    io.Writer // the ResponseWriter, through the blob rate limit
	n      int64
	status int
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.out.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeHtpasswd(path string, users map[string]string) error {
	var b strings.Builder
	for u, p := range users {
		if strings.ContainsAny(u, ":\n") {
			return fmt.Errorf("registry: user name %q may not contain ':' or a newline", u)
		}
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("registry: hash password of %s: %w", u, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
