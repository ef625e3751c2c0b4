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

// tcpNotSentLowat is TCP_NOTSENT_LOWAT (linux/tcp.h), which package
// syscall does not name.
const tcpNotSentLowat = 25

// setNotSentLowat caps the bytes c's socket holds that were not sent yet.
// Without a cap the kernel buffers megabytes of blocks per connection,
// and the requests, haves and cancels written after them wait until
// those left: a peer's pipelines then run dry while its own upload is
// still busy. With it the blocks wait in the upload queue, behind
// control messages and where a cancel still reaches them.
func setNotSentLowat(c *net.TCPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, n)
	})
}
