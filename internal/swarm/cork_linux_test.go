package swarm

import (
	"net"
	"syscall"
	"testing"
)

func TestSetNotSentLowat(t *testing.T) {
	nc, _ := tcpPair(t)
	tc := nc.(*net.TCPConn)
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mss int
	var merr error
	rc.Control(func(fd uintptr) { mss, merr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG) })
	if merr != nil {
		t.Fatal(merr)
	}
	// Loopback's segments are about 64 KiB: the cap is raised to four of
	// them, whatever smaller cap is asked for.
	for _, n := range []int{16 << 10, notSentLowat, 8 * mss} {
		want := max(n, 4*mss)
		if got := setNotSentLowat(tc, n); got != want {
			t.Errorf("setNotSentLowat(%d) = %d, want %d (MSS %d)", n, got, want, mss)
		}
		var got int
		var gerr error
		rc.Control(func(fd uintptr) {
			got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat)
		})
		if gerr != nil || got != want {
			t.Errorf("TCP_NOTSENT_LOWAT = %d (%v), want %d", got, gerr, want)
		}
	}
}
