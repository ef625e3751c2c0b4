// Package agent implements murder's host-side workflows: seeding a complete
// artifact (Seed) and downloading, verifying, placing and then seeding one
// (Peer), with progress reporting and a detached mode for orchestrators.
//
// The commands in cmd/murder only parse flags into a SeedConfig or a
// PeerConfig and call one function of this package.
package agent
