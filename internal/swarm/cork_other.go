//go:build !linux

package swarm

import "net"

func setCork(c *net.TCPConn, on bool) {}
