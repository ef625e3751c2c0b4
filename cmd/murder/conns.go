package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/swarm"
)

// connFlags are the peer-wire admission flags of seed and peer.
type connFlags struct {
	allowFrom cidr.List
	perIP     int
}

func (c *connFlags) add(f *pflag.FlagSet) {
	f.Var(&c.allowFrom, "allow-from", "accept peer connections only from, and dial peers only at, addresses in this CIDR (198.18.0.0/15) or address; repeatable, or comma-separated (default: any address)")
	f.IntVar(&c.perIP, "max-conns-per-ip", swarm.DefaultMaxConnsPerIP, "most peer connections with one IP address, open or in their handshake (0: no limit)")
}

// maxConnsPerIP is the --max-conns-per-ip value as agent configs take it.
func (c *connFlags) maxConnsPerIP() (int, error) {
	switch {
	case c.perIP < 0:
		return 0, usageError(fmt.Errorf("--max-conns-per-ip %d: want 0 (no limit) or more", c.perIP))
	case c.perIP == 0:
		return -1, nil
	}
	return c.perIP, nil
}
