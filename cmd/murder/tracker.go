package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/tracker"
)

func newTrackerCmd() *cobra.Command {
	var (
		cfg          tracker.Config
		logLevel     string
		storeURL     string
		storeTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "tracker",
		Short: "Run the BitTorrent tracker that coordinates a deploy",
		Long: `tracker runs murder's HTTP BitTorrent tracker. Seeders and peers announce
to http://HOST:PORT/announce; counts per torrent are at /scrape, and
Prometheus metrics at /metrics (see docs/metrics.md). http://HOST:PORT/ is a
live page of every swarm, its peers' progress and the recent deploys, with
the JSON API behind it at /api/swarms (see docs/status.md, and murder
status).

Swarm state lives in memory (--store memory, the default) or in Redis
(--store redis://HOST:PORT/DB): any number of trackers on one Redis, and one
key prefix, serve the same swarms, so peers may fail over between them
(BEP 12 announce-list) and a tracker that stops or restarts loses nothing.
Each announce is one round trip to Redis; keys expire by themselves. When
Redis is down or slower than --store-timeout, announces get a failure
reason and /metrics shows murder_tracker_store_up 0; the tracker reconnects
by itself. See docs/tracker-replicas.md.

Limits, so that no client can fill the tracker or change another's peers:
at most --max-torrents torrents and --max-peers-per-torrent peers per
torrent (on Redis, torrents announced within a day, spread over 64 shards
of info hashes); past them a new torrent or peer gets a failure reason and
murder_tracker_refused_total counts it. A completed or stopped event from
a peer the tracker does not list never creates a torrent. A listed peer is
changed or removed only by announces that carry its key (BEP 7's key
parameter, which murder's peers send) or, when it announced without one,
that come from its address. The ip parameter is taken only from sources
in --trust-ip-from (any, by default) and only when it is a unicast
address: not unspecified, multicast, broadcast or link-local, and not
loopback unless the announce comes from loopback; otherwise the peer is
listed at the connection's source address. With --allow-from the tracker
closes connections from every other address as it accepts them. A scrape
without info_hash (every torrent) is refused unless --full-scrape.

A peer that misses two of its announce intervals is dropped; a stopped
event drops it at once. A peer's interval is --interval, or the longer gap
at which the peer is seen to re-announce: libtorrent, for one, re-announces
at most every 300 s whatever it is told, so libtorrent peers (and
qBittorrent and Deluge, built on it) are kept 600 s from their first
announce, and any peer that comes back later than asked is kept for twice
the gap it came back after. Peers get a random sample of the
swarm, never themselves, and seeders get no other seeders.

Peers in several datacenters: with --topology FILE (or when peers announce
their own --datacenter and --rack, which win over the file) a peer gets
peers of its own rack first, then of its own datacenter. In each datacenter
that holds no seeder one peer, the first to announce, is the gateway: it
also gets the seeders, the other datacenters' gateways and the peers of
the seeders' datacenters. The other peers get the data inside their
datacenter, so that about one copy crosses each WAN link. A peer of no
known place gets a random sample as before. The file maps
address ranges to places (docs/datacenters.md):

  [[datacenter]]
  name = "east"
  cidrs = ["10.1.0.0/16", "2001:db8:1::/48"]
  [[datacenter.rack]]          # racks are optional
  name = "r12"
  cidrs = ["10.1.12.0/24"]

The most specific range wins. A bad file is refused with its line and the
reason. SIGHUP re-reads the file; a bad one is logged and the one in use is
kept.

With --allow-dir only the torrents whose .torrent files lie in DIR are
tracked, DIR is re-read when it changes, and each file is served at
/torrents/NAME (NAME may also be the file name without ".torrent", or a tag
when exactly one TAG.*.torrent exists).

The tracker stops gracefully on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level, err := parseLogLevel(logLevel)
			if err != nil {
				return err
			}
			log, err := newLogger(cmd, cmd.ErrOrStderr(), level)
			if err != nil {
				return err
			}
			if cfg.Interval < time.Second {
				return &exitError{code: 2, err: fmt.Errorf("--interval %s is too short, want at least 1s", cfg.Interval)}
			}
			if cfg.MaxNumWant < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--numwant-max must be at least 1")}
			}
			if cfg.MaxTorrents < 1 || cfg.MaxPeers < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--max-torrents and --max-peers-per-torrent must be at least 1")}
			}
			cfg.Logger = log
			if storeURL != "memory" {
				st, err := tracker.NewRedisStore(tracker.RedisStoreConfig{URL: storeURL, PeerTTL: 2 * cfg.Interval, Timeout: storeTimeout,
					MaxTorrents: cfg.MaxTorrents, MaxPeers: cfg.MaxPeers, Logger: log})
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--store: %w", err)}
				}
				defer st.Close()
				if err := st.Ping(cmd.Context()); err != nil {
					log.Warn("redis does not answer yet; announces fail until it does", "err", err)
				}
				cfg.Store = st
			}
			srv, err := tracker.NewServer(cfg)
			if errors.Is(err, tracker.ErrTopology) {
				return &exitError{code: 2, err: err}
			}
			if err != nil {
				return err
			}
			if cfg.Topology != "" {
				hup := make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
				go func() {
					for range hup {
						srv.ReloadTopology() // logs a bad file and keeps the old one
					}
				}()
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", tracker.DefaultListen, "address to listen on, host:port (an empty host listens on all addresses)")
	f.DurationVar(&cfg.Interval, "interval", tracker.DefaultInterval, "announce interval sent to peers; peers silent for two intervals (or two of their longer re-announce gaps) are dropped")
	f.IntVar(&cfg.MaxNumWant, "numwant-max", tracker.DefaultMaxNumWant, "most peers one announce gets, whatever its numwant asks (an announce without numwant gets 50)")
	f.StringVar(&cfg.AllowDir, "allow-dir", "", "track only the torrents whose .torrent files lie in this directory, and serve them at /torrents/NAME")
	f.StringVar(&cfg.Topology, "topology", "", "TOML file mapping address ranges to datacenters and racks; peers get peers near them first (re-read on SIGHUP)")
	f.BoolVar(&cfg.IgnoreIPParam, "ignore-ip-param", false, "ignore the announce's ip parameter and use the connection's source address")
	f.Var(&cfg.TrustIPFrom, "trust-ip-from", "take the announce's ip parameter only from sources in this CIDR (198.18.0.0/15) or address; repeatable, or comma-separated (default: any source)")
	f.Var(&cfg.AllowFrom, "allow-from", "serve only connections from this CIDR (198.18.0.0/15) or address, closing others as they are accepted; repeatable, or comma-separated (default: any address)")
	f.IntVar(&cfg.MaxTorrents, "max-torrents", tracker.DefaultMaxTorrents, "most torrents tracked at once; announces for more get a failure reason")
	f.IntVar(&cfg.MaxPeers, "max-peers-per-torrent", tracker.DefaultMaxPeers, "most peers listed per torrent; more get a failure reason")
	f.BoolVar(&cfg.FullScrape, "full-scrape", false, "answer a scrape without info_hash with every torrent (off: such a scrape gets a failure reason)")
	f.StringVar(&storeURL, "store", "memory", "where the swarms live: memory, or Redis shared by tracker replicas: redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss:// (TLS), unix:///PATH, redis+sentinel://HOST:26379?master_name=NAME, redis+cluster://HOST:PORT[?addr=HOST:PORT...]")
	f.DurationVar(&storeTimeout, "store-timeout", tracker.DefaultRedisTimeout, "longest wait for Redis in one announce or scrape; past it the peer gets a failure reason")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug (every announce), info, warn or error")
	return cmd
}
