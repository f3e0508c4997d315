// Package preheat holds the supernode's preheat jobs apart from their wiring: the job state
// machine (pure: no I/O, no goroutines, time passed in), the bbolt store that keeps jobs across
// restarts, and the resolution of an image reference into the blobs to warm, with containerd's
// registry client (token and basic auth, index narrowed to a platform).
//
// A job never holds credentials: the supernode keeps those in memory for the job's run only and
// passes them to [Registry] directly. What the store writes and what the API shows is a [Job],
// so neither can leak them.
package preheat
