package swarm

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// fileSender sends file ranges to a TCP connection with sendfile(2) at an
// explicit offset, so uploads share the storage's file handles and cost no
// copy to user space, no seek and no allocation per block.
type fileSender struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool
	srcFd int
	off   int64
	n     int
	err   error
}

func newFileSender(c net.Conn) *fileSender {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	fs := &fileSender{rc: rc}
	fs.fn = fs.write
	return fs
}

func (fs *fileSender) write(fd uintptr) bool {
	for fs.n > 0 {
		m, err := syscall.Sendfile(int(fd), fs.srcFd, &fs.off, fs.n)
		if m > 0 {
			fs.n -= m
		}
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return false // wait until writable
		case errors.Is(err, syscall.EINTR):
		case err != nil:
			fs.err = err
			return true
		case m == 0:
			fs.err = io.ErrUnexpectedEOF
			return true
		}
	}
	return true
}

// send writes n bytes of f from offset off.
func (fs *fileSender) send(f *os.File, off int64, n int) error {
	fs.srcFd, fs.off, fs.n, fs.err = int(f.Fd()), off, n, nil
	if err := fs.rc.Write(fs.fn); err != nil {
		return err
	}
	return fs.err
}
