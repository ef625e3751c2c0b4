//go:build !linux

package swarm

import "net"

func setCork(c *net.TCPConn, on bool) {}

func setNotSentLowat(c *net.TCPConn, n int) int { return 0 }
