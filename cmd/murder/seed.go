package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/agent"
)

func newSeedCmd() *cobra.Command {
	var cfg agent.SeedConfig
	var upload, logLevel string
	var conns connFlags
	cmd := &cobra.Command{
		Use:   "seed --torrent FILE [--data PATH]",
		Short: "Serve a complete artifact to peers",
		Long: `seed verifies the artifact against the torrent, announces it to the
torrent's trackers and serves it to peers until it is stopped (SIGINT or
SIGTERM) or until --seed-time passes. On the way out it announces "stopped".
It fails when no tracker has answered within --timeout.

An artifact that murder create wrote is not hashed again while the stamp
create left beside it (NAME.murder-verified) still matches: the same info
hash, and the file's inode, size, modification and change times unchanged
(any write changes the change time). Otherwise every piece is hashed.

Rates are bytes per second: 10MB (10,000,000), 50MiB (52,428,800), 100M
(104,857,600, as curl and aria2 read it); 0 means no limit.

With --allow-from CIDR (repeatable) only peers in those ranges may connect,
and only they are dialed; a connection from elsewhere is closed before a
byte is sent. One address holds at most --max-conns-per-ip connections, and
a peer that sends bad data is refused by address from then on
(docs/connections.md).

With --metrics-listen HOST:PORT it serves Prometheus metrics at
http://HOST:PORT/metrics while it runs: bytes uploaded, peers, rates and
state (names in docs/metrics.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.UploadRate, err = parseRateFlag("--max-upload-rate", upload); err != nil {
				return err
			}
			cfg.AllowFrom = conns.allowFrom
			if cfg.MaxConnsPerIP, err = conns.maxConnsPerIP(); err != nil {
				return err
			}
			if err := checkPlaceFlags(cfg.Datacenter, cfg.Rack); err != nil {
				return err
			}
			level, err := parseLogLevel(logLevel)
			if err != nil {
				return err
			}
			if cfg.Logger, err = newLogger(cmd, cmd.ErrOrStderr(), level); err != nil {
				return err
			}
			return agent.Seed(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Torrent, "torrent", "", "the .torrent file to serve (required)")
	f.StringVar(&cfg.Data, "data", "", "the artifact (file, or directory of a multi-file torrent); default: the torrent's name next to the torrent file, else in --temp-path")
	f.StringVar(&cfg.TempPath, "temp-path", agent.DefaultTempPath, "where to look for the artifact when --data is not given and it is not next to the torrent")
	f.StringVar(&cfg.AnnounceIP, "ip", "", "IP address to announce to the tracker (default: the address the tracker sees)")
	f.StringVar(&cfg.ListenAddr, "listen", "", "peer-wire listen address, HOST:PORT (default: any address, a free port)")
	f.StringVar(&cfg.Datacenter, "datacenter", "", "datacenter this host is in, sent to the tracker so that peers of the same datacenter get this seeder first (default: the tracker's --topology, if any)")
	f.StringVar(&cfg.Rack, "rack", "", "rack this host is in, within --datacenter")
	f.DurationVar(&cfg.SeedTime, "seed-time", 0, "stop seeding after this long, e.g. 10m (default: until stopped)")
	f.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "fail (exit 1) when no tracker has answered an announce within this long; 0 waits forever")
	f.StringVar(&upload, "max-upload-rate", "0", "upload limit in bytes per second, e.g. 10MB, 50MiB, 940Mbit (0: no limit); blocks are paced at it, so just below the link's rate it keeps the link's queue short")
	conns.add(f)
	f.StringVar(&cfg.MetricsAddr, "metrics-listen", "", "serve Prometheus metrics at http://HOST:PORT/metrics while seeding, e.g. 127.0.0.1:9100 (default: off)")
	f.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug (every connection), info, warn or error")
	_ = cmd.MarkFlagRequired("torrent")
	return cmd
}
