// Package piece owns how Pouch cuts content into pieces and keeps them on disk.
//
// It owns:
//   - the piece size policy (SizeFor, Count, Bounds): at most about TargetCount
//     pieces per task, each a power of two between MinSize and MaxSize, so a
//     bitfield stays small on the wire and a piece stays small in memory;
//   - per-piece SHA-256: every piece is hashed while it is written, and a piece
//     received from a peer is marked present only if it matches the trusted
//     digest recorded for it (from the supernode or computed by the seed);
//   - the on-disk store (Store, Task): one data file per task under
//     <dir>/data/<hex of the task ID>, written at piece offsets in any order and
//     from several goroutines at once, and a bbolt index at <dir>/index.db with
//     each task's metadata, piece digests, bitfield and last access time;
//   - resume after a restart (Open reloads every task, Create of a known task
//     returns it with the pieces it already holds) and garbage collection by disk
//     quota and TTL, least recently used first, never evicting a task in use.
//
// It must not:
//   - do any network I/O, or know about peers, parents, supernodes or HTTP:
//     callers hand it an io.Reader and it hands back readers and bitfields;
//   - take a filesystem path from outside: file names are only ever the hex of a
//     validated sha256 task ID;
//   - trust bytes it has not verified: WritePiece never marks a piece present
//     unless its SHA-256 matches the known digest;
//   - keep a whole piece in memory: pieces stream through a small buffer, so
//     memory does not grow with the piece size or the number of writers;
//   - use a global logger: pass one in Options.
package piece
