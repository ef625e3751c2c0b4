package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/agent"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/tracker"
)

func newPeerCmd() *cobra.Command {
	var (
		cfg              agent.PeerConfig
		upload, download string
		progress         string
		detach           bool
		statusFD         int
		logLevel         string
		conns            connFlags
	)
	cmd := &cobra.Command{
		Use:   "peer --torrent FILE --destination-path DIR",
		Short: "Download an artifact, place it, and seed it on",
		Long: `peer downloads the torrent's artifact, verifies every piece (and the
whole file's sha256 when the torrent carries one), and extracts it into
DIR/TAG, or into DIR with --no-tag-directory. TAG is the artifact's name
without .tgz, .tar.zst or .tar. With --path-is-file, or when the torrent is
not one of murder's archives, the downloaded files are placed as they are (a
multi-file torrent keeps its tree).

An archive downloads into --temp-path, and the new tree is extracted during
the download, as the archive's front arrives (murder's seeder sends pieces
about in order), into a hidden directory beside the destination
(.TAG.murder-new-*), renamed into place once everything is verified. One
left behind by a peer that was killed is removed by the next run. Files
placed as they are download straight into a hidden directory beside the
destination (.TAG.murder-partial-INFOHASH), so that every byte is written
once, and that directory is renamed into place.

If the destination exists and is not empty, peer refuses unless
--unsafe-please-delete is given. Other entries of DIR are left alone. On any
failure the destination is left as it was. An archive that would expand
beyond the space free on the destination's file system (keeping the larger
of 64 MiB and 1% of it free), or that holds more than 10 million entries, is
refused before it fills the disk ("archive too large").

After success it seeds on for --seed-time and exits. A restarted peer reuses
the pieces already verified by the run before: an archive's in --temp-path,
files placed as they are in their .TAG.murder-partial-INFOHASH directory
(which a download of anything else to the same destination removes).

Rates are bytes per second: 10MB (10,000,000), 50MiB (52,428,800), 100M
(104,857,600, as curl and aria2 read it); 0 means no limit.

With --allow-from CIDR (repeatable) only peers in those ranges may connect,
and only they are dialed; a connection from elsewhere is closed before a
byte is sent. One address holds at most --max-conns-per-ip connections, and
a peer that sends bad data is refused by address from then on
(docs/connections.md).

With --allowed-signers FILE (an OpenSSH allowed_signers file) the torrent
must be signed: its signature (--signature, by default the torrent's path
with .sig added, as murder create --sign-key and ssh-keygen -Y sign -n
murder write it) must be well formed, made for namespace "murder", by a key
the file allows, over exactly these bytes. Otherwise peer refuses before
contacting the tracker or touching the destination, and says which check
failed (docs/trust.md). The torrent's name must give a valid tag (letters,
digits, '.', '-' and '_').

With --metrics-listen HOST:PORT it serves Prometheus metrics at
http://HOST:PORT/metrics until it exits: bytes downloaded and uploaded,
verified bytes, rates, peers and state (names in docs/metrics.md). With
--detach the background process serves them while it seeds on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.UploadRate, err = parseRateFlag("--max-upload-rate", upload); err != nil {
				return err
			}
			if cfg.DownloadRate, err = parseRateFlag("--max-download-rate", download); err != nil {
				return err
			}
			cfg.AllowFrom = conns.allowFrom
			if cfg.MaxConnsPerIP, err = conns.maxConnsPerIP(); err != nil {
				return err
			}
			if err := checkPlaceFlags(cfg.Datacenter, cfg.Rack); err != nil {
				return err
			}
			if cfg.Signature != "" && cfg.AllowedSigners == "" {
				return usageError(errors.New("--signature needs --allowed-signers, which says whose signatures count"))
			}
			mode, err := agent.ParseProgressMode(progress)
			if err != nil {
				return usageError(err)
			}
			level, err := parseLogLevel(logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()

			var rep agent.Reporter
			if statusFD > 0 {
				// A detached child: events go to the parent's pipe.
				w, err := agent.StatusWriter(statusFD)
				if err != nil {
					return err
				}
				rep = agent.NewStatusReporter(w)
			} else {
				rep = agent.NewReporter(mode, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			defer rep.Close()
			logger, err := newLogger(cmd, agent.LogWriter(rep, cmd.ErrOrStderr()), level)
			if err != nil {
				return err
			}

			if detach && statusFD == 0 {
				temp := cfg.TempPath
				if err := os.MkdirAll(temp, 0o755); err != nil {
					return fmt.Errorf("temp path: %w", err)
				}
				logPath := filepath.Join(temp, "murder-peer-"+filepath.Base(cfg.Torrent)+".log")
				pid, err := agent.Detach(ctx, agent.DetachConfig{
					Args:     detachedArgs(os.Args[1:]),
					LogPath:  logPath,
					Reporter: rep,
					Logger:   logger,
				})
				if err != nil {
					return err
				}
				logger.Info("files in place; seeding on in the background", "pid", pid, "log", logPath)
				return nil
			}
			cfg.Reporter = rep
			cfg.Logger = logger
			return agent.Peer(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Torrent, "torrent", "", "the .torrent file to download (required)")
	f.StringVar(&cfg.Destination, "destination-path", "", "directory that receives TAG/ with the extracted files (required)")
	f.BoolVar(&cfg.NoTagDirectory, "no-tag-directory", false, "place the files in --destination-path itself, not in a TAG subdirectory")
	f.BoolVar(&cfg.UnsafePleaseDelete, "unsafe-please-delete", false, "replace a destination that exists and is not empty (its contents are deleted)")
	f.BoolVar(&cfg.PathIsFile, "path-is-file", false, "place the downloaded file as it is instead of extracting it")
	f.StringVar(&cfg.TempPath, "temp-path", agent.DefaultTempPath, "directory for an archive's download; kept so an interrupted run resumes")
	f.StringVar(&cfg.AnnounceIP, "ip", "", "IP address to announce to the tracker (default: the address the tracker sees)")
	f.StringVar(&cfg.ListenAddr, "listen", "", "peer-wire listen address, HOST:PORT (default: any address, a free port)")
	f.StringVar(&cfg.Datacenter, "datacenter", "", "datacenter this host is in, sent to the tracker, which then hands out peers of the same datacenter first; peers of other datacenters are asked only for pieces none of this one has (default: the tracker's --topology, if any)")
	f.StringVar(&cfg.Rack, "rack", "", "rack this host is in, within --datacenter; peers of the same rack come first")
	f.DurationVar(&cfg.SeedTime, "seed-time", agent.DefaultPeerSeedTime, "keep seeding this long after the files are in place (0: exit at once)")
	f.StringVar(&upload, "max-upload-rate", "0", "upload limit in bytes per second, e.g. 10MB, 50MiB, 940Mbit (0: no limit); blocks are paced at it, so just below the link's rate it keeps the link's queue short")
	f.StringVar(&download, "max-download-rate", "0", "download limit in bytes per second (0: no limit)")
	f.StringVar(&progress, "progress", string(agent.ProgressAuto), "progress display: auto (bar on a terminal), bar, json (one JSON object per line on stdout) or none")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "fail if the files are not in place after this long, e.g. 10m (0: no limit); also ends seeding")
	f.BoolVar(&detach, "detach", false, "return as soon as the files are in place and seed on in a background process (log in --temp-path)")
	conns.add(f)
	f.StringVar(&cfg.MetricsAddr, "metrics-listen", "", "serve Prometheus metrics at http://HOST:PORT/metrics until the peer exits, e.g. 127.0.0.1:9100 (default: off)")
	f.StringVar(&cfg.AllowedSigners, "allowed-signers", "", "OpenSSH allowed_signers file: refuse the torrent unless it carries a good signature (namespace murder) by a key listed there")
	f.StringVar(&cfg.Signature, "signature", "", "the torrent's signature file, with --allowed-signers (default: the torrent's path with .sig added)")
	f.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug (every connection), info, warn or error")
	f.IntVar(&statusFD, "status-fd", 0, "internal: write the JSON progress events to this file descriptor and close it after the last one (done or error); --detach and the fleet's peer sessions use it")
	_ = f.MarkHidden("status-fd")
	_ = cmd.MarkFlagRequired("torrent")
	_ = cmd.MarkFlagRequired("destination-path")
	return cmd
}

// detachedArgs turns this command line into the detached child's: without
// --detach, reporting on the status pipe instead of the terminal.
func detachedArgs(args []string) []string {
	out := make([]string, 0, len(args)+2)
	for _, a := range args {
		if a == "--detach" || strings.HasPrefix(a, "--detach=") {
			continue
		}
		out = append(out, a)
	}
	return append(out, fmt.Sprintf("--status-fd=%d", agent.StatusFD), "--progress=none")
}

// parseRateFlag parses a rate flag, naming the flag in the error.
func parseRateFlag(name, v string) (int64, error) {
	r, err := bytesize.ParseRate(v)
	if err != nil {
		return 0, usageError(fmt.Errorf("%s: %w", name, err))
	}
	return r, nil
}

// parseLogLevel maps a --log-level value to a slog level.
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageError(fmt.Errorf("--log-level %q: want debug, info, warn or error", s))
	}
	return l, nil
}

// checkPlaceFlags checks --datacenter and --rack.
func checkPlaceFlags(datacenter, rack string) error {
	if datacenter != "" {
		if err := tracker.CheckPlaceName("datacenter", datacenter); err != nil {
			return usageError(fmt.Errorf("--datacenter: %w", err))
		}
	}
	if rack != "" {
		if datacenter == "" {
			return usageError(errors.New("--rack needs --datacenter"))
		}
		if err := tracker.CheckPlaceName("rack", rack); err != nil {
			return usageError(fmt.Errorf("--rack: %w", err))
		}
	}
	return nil
}
