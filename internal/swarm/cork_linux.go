package swarm

import (
	"net"
	"syscall"
)

// setCork holds back partial segments while a batch of blocks is written
// (a 13-byte piece header followed by sendfile), and flushes when cleared.
func setCork(c *net.TCPConn, on bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
