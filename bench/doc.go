// Package bench measures Pouch against the Kumar–Ross minimum distribution time and against the
// plain alternative (every node pulling from the origin), in the same run.
//
// It owns the cluster harness ([Run]: an origin, a supernode and N dfdaemons started as separate
// processes on loopback, every listener on port 0, each node capped by the daemons' own
// --upload-rate/--download-rate), the workloads (burst, waves), the bound ([Bound]), the
// discrete-event simulator ([Simulate], which drives the real scheduler package with simulated
// peers and no sockets), the control-plane load generator ([Load]: one supernode process and
// thousands of simulated peers speaking its peer API, each with its own key) and the reports
// (table, result.json, SVG).
//
// It must not reach into the daemons: it talks to them only through their command lines, their
// ready line, dfget and /metrics, exactly as an operator would ([Load] also through the
// supernode's peer API, exactly as a dfdaemon does), so what it measures is what ships.
//
// # Binaries
//
// [Run] starts the supernode, dfdaemon and dfget binaries found in Config.BinDir; the dfbench
// command sets it to the directory of its own executable, so build them together:
//
//	go build -o bin/ ./cmd/supernode ./cmd/dfdaemon ./cmd/dfget ./cmd/dfbench
//	bin/dfbench run --nodes 8 --size 64MiB
//
// # Rates and the bound
//
// Every node uploads at most UploadRate and downloads at most DownloadRate. The seed (the
// supernode) uploads at most SeedRate (default UploadRate), and the origin serves at most
// OriginRate (default UploadRate) over all its connections together. With F the content size,
// u_s = min(SeedRate, OriginRate) (the seed cannot send faster than it is fed), u_i = UploadRate
// and d_min = DownloadRate, the Kumar–Ross minimum for N nodes is
//
//	T_min = max(F/u_s, F/d_min, N·F/(u_s + Σ u_i))
//
// For waves, each wave of n_w nodes has its own bound, where the nodes finished in earlier waves
// are sources alongside the seed; see [WaveBounds].
package bench
