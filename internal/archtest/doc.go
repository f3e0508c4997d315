// Package archtest holds no code: its test checks that the module's imports point one way, as
// docs/architecture.md says — cmd → components → scheduler, piece, internal/*; scheduler, piece
// and internal/* import no component; scheduler and scheduler/picker, pure policies, import
// nothing else of Pouch; neither registryproxy nor dfget imports dfdaemon, and the dfget binary
// links nothing of the daemons (libp2p, the Prometheus client, bbolt...: it starts for every
// download); bench reaches the daemons only through their processes and published contracts;
// and the test fixtures under internal/fixture are imported only by tests, bench and
// cmd/dfbench (the demo and dfbench) and one another. Only non-test imports count: any _test.go
// file may import what it needs.
package archtest
