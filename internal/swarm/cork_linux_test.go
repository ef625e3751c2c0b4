package swarm

import (
	"net"
	"syscall"
	"testing"
)

func TestSetNotSentLowat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := nc.(*net.TCPConn)
	for _, n := range []int{16 << 10, notSentLowat} {
		setNotSentLowat(tc, n)
		rc, err := tc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		rc.Control(func(fd uintptr) {
			got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat)
		})
		if gerr != nil || got != n {
			t.Errorf("TCP_NOTSENT_LOWAT = %d (%v), want %d", got, gerr, n)
		}
	}
}
