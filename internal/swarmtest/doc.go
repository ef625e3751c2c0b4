// Package swarmtest holds murder's multi-host swarm tests: the murder
// binary (tracker, create, seed, peer) run on hosts of a test bed
// (internal/testbed) with capped links, under faults: killed seeders and
// peers, a restarted tracker, a peer serving corrupt pieces, packet loss
// and latency. The package has no code of its own besides these tests.
package swarmtest
