// Package supernode is the cluster's coordinator and seed. It keeps the registry of tasks and
// peers, asks the scheduler package for each peer's parents, and runs the seed: for every task it
// fetches the content from the origin exactly once (single-flight, streaming, Range resume),
// hashes each piece as it arrives and publishes it at once, both as a piece digest for peers to
// verify against and as a piece the seed serves over libp2p. It stays off the per-piece path:
// peers trade pieces among themselves and report progress in batches.
//
// It must not trust peers with integrity: piece digests come only from the seed's own hashing.
package supernode
