package swarm

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// scatterReader returns a function that reads from nc into p and then q
// with one readv(2), waiting in the runtime's poller like any read and
// keeping nc's deadlines; nil when nc has no file descriptor.
func scatterReader(nc net.Conn) func(p, q []byte) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(p, q []byte) (int, error) {
		iov := [][]byte{p, q}
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Readv(int(fd), iov)
				if rerr != unix.EINTR {
					return rerr != unix.EAGAIN
				}
			}
		})
		switch {
		case err != nil:
			return 0, err
		case rerr != nil:
			return 0, &net.OpError{Op: "read", Net: nc.LocalAddr().Network(), Source: nc.LocalAddr(), Addr: nc.RemoteAddr(), Err: rerr}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
