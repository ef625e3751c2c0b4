package swarm

import (
	"net"
	"syscall"
)

// setCork holds back partial segments while a batch of blocks is written,
// and flushes when cleared.
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

// setNotSentLowat caps the bytes c's socket holds that were not sent yet
// at n, or at four segments when that is more. Without a cap the kernel
// buffers megabytes of blocks per connection, and the requests, haves and
// cancels written after them wait until those left: a peer's pipelines
// then run dry while its own upload is still busy. With it the blocks wait
// in the upload queue, behind control messages and where a cancel still
// reaches them. Below a few segments the cap would stall a corked socket
// (loopback's segments are 64 KiB): the writer waits for room while the
// kernel holds back the partial segment it has. It returns the cap set.
func setNotSentLowat(c *net.TCPConn, n int) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	rc.Control(func(fd uintptr) {
		if mss, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG); err == nil {
			n = max(n, 4*mss)
		}
		if syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, n) != nil {
			n = 0
		}
	})
	return n
}
