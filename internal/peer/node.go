package peer

import (
	"errors"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/piece"
)

// NodeConfig is what any peer — a dfdaemon, or the supernode's seed — keeps on disk and
// offers on the wire.
type NodeConfig struct {
	DataDir    string   // pieces/ (store and index) and identity.key live here
	Listen     string   // libp2p multiaddr
	Advertise  []string // see HostConfig.Advertise
	Secret     string   // cluster pre-shared key
	UploadRate int64    // bytes/s to all children together; 0 = none
	SuperSeed  bool     // see ServerConfig.SuperSeed
	Log        *zap.Logger
}

// Node is a piece store served to children over a libp2p host.
type Node struct {
	Store  *piece.Store
	Host   host.Host
	Upload *Server
}

// OpenNode opens the store (resuming what is on disk), starts the host and serves uploads.
func OpenNode(cfg NodeConfig) (*Node, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	store, err := piece.Open(filepath.Join(cfg.DataDir, "pieces"), piece.Options{Logger: cfg.Log})
	if err != nil {
		return nil, err
	}
	role := RolePeer
	if cfg.SuperSeed {
		role = RoleSeed // only the supernode's seed super-seeds
	}
	h, err := NewHost(HostConfig{Listen: []string{cfg.Listen}, Advertise: cfg.Advertise, KeyFile: filepath.Join(cfg.DataDir, "identity.key"), Secret: cfg.Secret, Role: role})
	if err != nil {
		store.Close()
		return nil, err
	}
	up := NewServer(h, store, ServerConfig{Limiter: ratelimit.New(cfg.UploadRate), Log: cfg.Log.Named("upload"), SuperSeed: cfg.SuperSeed,
		Digests: role == RoleSeed})
	return &Node{Store: store, Host: h, Upload: up}, nil
}

// Close stops serving, then closes the host and the store.
func (n *Node) Close() error {
	n.Upload.Close()
	return errors.Join(n.Host.Close(), n.Store.Close())
}
