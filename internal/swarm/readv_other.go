//go:build !linux

package swarm

import "net"

// scatterReader is nil where readv(2) is not used: a readBuffer then
// reads through its buffer.
func scatterReader(nc net.Conn) func(p, q []byte) (int, error) { return nil }
