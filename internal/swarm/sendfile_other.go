//go:build !linux

package swarm

import (
	"net"
	"os"
)

type fileSender struct{}

// newFileSender returns nil: blocks are read and written instead.
func newFileSender(net.Conn) *fileSender { return nil }

func (*fileSender) send(*os.File, int64, int) error { return nil }
