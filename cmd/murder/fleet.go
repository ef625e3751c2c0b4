package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/deploy"
	"github.com/murder-deploy/murder/internal/fleet"
)

// fleetFlags are the settings every fleet task and the fleet deploy share.
type fleetFlags struct {
	config            string
	acceptNewHostKeys bool
	binary            string
	verbose           bool
}

func (ff *fleetFlags) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVarP(&ff.config, "config", "c", "murder.toml", "the inventory: hosts, roles, paths and SSH settings (see murder.toml.example)")
	f.BoolVar(&ff.acceptNewHostKeys, "accept-new-host-keys", false, "add the keys of hosts missing from known_hosts instead of failing them (a changed key still fails)")
	f.BoolVarP(&ff.verbose, "verbose", "v", false, "log SSH and host details to stderr")
}

// open loads the inventory and connects the runner.
func (ff *fleetFlags) open(cmd *cobra.Command) (*deploy.Fleet, func(), error) {
	inv, err := fleet.LoadInventory(ff.config)
	if err != nil {
		return nil, nil, err
	}
	level := slog.LevelWarn
	if ff.verbose {
		level = slog.LevelDebug
	}
	logger, err := newLogger(cmd, cmd.ErrOrStderr(), level)
	if err != nil {
		return nil, nil, err
	}
	sshCfg := inv.SSH
	sshCfg.AcceptNewHostKeys = ff.acceptNewHostKeys
	runner, err := fleet.NewRunner(sshCfg, logger)
	if err != nil {
		return nil, nil, err
	}
	fl, err := deploy.New(deploy.Config{
		Inventory: inv,
		Runner:    runner,
		Binary:    ff.binary,
		Out:       cmd.OutOrStdout(),
		Live:      isTerminal(cmd.OutOrStdout()),
		Logger:    logger,
		Verbose:   ff.verbose,
	})
	if err != nil {
		runner.Close()
		return nil, nil, err
	}
	return fl, func() { fl.Close(); runner.Close() }, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// remoteDestination checks a destination path on the peers before any
// host is contacted.
func remoteDestination(dest string) error {
	if !strings.HasPrefix(dest, "/") {
		return usageError(fmt.Errorf("--destination-path must be an absolute path on the peers, got %q", dest))
	}
	return nil
}

// hostFailure prints the table of failed hosts and turns err into the
// command's error.
func hostFailure(cmd *cobra.Command, err error, total int) error {
	if err == nil {
		return nil
	}
	deploy.PrintFailures(cmd.OutOrStdout(), err, total)
	if fe, ok := err.(*fleet.FailedHostsError); ok {
		return fe
	}
	return fleet.NewFailedHostsError(err, total)
}

func newFleetCmd() *cobra.Command {
	ff := &fleetFlags{}
	cmd := &cobra.Command{
		Use:   "fleet TASK",
		Short: "Run one of Murder's tasks on the fleet over SSH",
		Long: `fleet runs one step of Murder's workflow on the hosts listed in the
inventory (-c, murder.toml): the tracker host, the seeder host and the
peers. It connects over SSH (host keys checked against known_hosts; the ssh
agent and identity files authenticate). Every task works on all its hosts
at once (at most ssh.concurrency), prints a line per step and a table of the
hosts that failed and why, and exits 1 when any host failed, while the
others still finish.

TAG names the deploy, as in murder create; the temp path and the remote
murder path come from the inventory (temp_path, remote_murder_path).

A usual run, as with Murder's Capistrano tasks:
  murder fleet -c murder.toml distribute-files
  murder fleet -c murder.toml start-tracker
  murder fleet -c murder.toml create-torrent --tag v42 --files-path /srv/build
  murder fleet -c murder.toml start-seeding --tag v42
  murder fleet -c murder.toml peer --tag v42 --destination-path /srv/app
  murder fleet -c murder.toml stop-seeding --tag v42
  murder fleet -c murder.toml stop-tracker
  murder fleet -c murder.toml clean-temp-files --tag v42

murder deploy does all of it in one command.`,
		Args:                       cobra.ArbitraryArgs,
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				var names []string
				for _, c := range cmd.Commands() {
					if c.IsAvailableCommand() {
						names = append(names, c.Name())
					}
				}
				return usageError(fmt.Errorf("name a task: %s", strings.Join(names, ", ")))
			}
			msg := fmt.Sprintf("unknown task %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usageError(errors.New(msg))
		},
	}
	ff.register(cmd)

	var tag, filesPath string
	var popt deploy.PeerOptions
	task := func(use, short, long string, needTag bool, run func(cmd *cobra.Command, fl *deploy.Fleet) error) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Long:  long,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if needTag {
					if err := deploy.ValidTag(tag); err != nil {
						return usageError(errors.New(strings.TrimPrefix(err.Error(), "deploy: ")))
					}
				}
				fl, closeFn, err := ff.open(cmd)
				if err != nil {
					return err
				}
				defer closeFn()
				return run(cmd, fl)
			},
		}
		if needTag {
			c.Flags().StringVar(&tag, "tag", "", "name of the deploy, as given to create-torrent: the artifact is TEMP/TAG.tgz (required; use letters, digits, '.', '-' and '_')")
			_ = c.MarkFlagRequired("tag")
		}
		return c
	}
	distribute := task("distribute-files", "Copy the murder binary to remote_murder_path on every host",
		`distribute-files copies the murder binary to remote_murder_path/murder on
every host of the inventory (tracker, seeder and peers) and checks that it
runs there. Hosts that already have the same binary are skipped, so running
it again is cheap.`, false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.DistributeFiles(cmd.Context()), len(fl.Inventory().All()))
		})
	distribute.Flags().StringVar(&ff.binary, "binary", "", "the murder binary to copy (default: the one running); it must suit the hosts' OS and CPU")
	distribute.Example = `  murder fleet -c murder.toml distribute-files
  murder fleet -c murder.toml distribute-files --binary ./dist/murder-linux-arm64`

	startTracker := task("start-tracker", "Start the tracker (detached) unless it runs, and wait until it answers",
		`start-tracker starts murder tracker on each tracker host, listening on
tracker_port (with --store from [tracker] store), as a background process
with its pid and log files in the temp path, and waits until it answers.
A tracker that already runs is left as it is.`, false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			_, err := fl.StartTracker(cmd.Context())
			return hostFailure(cmd, err, len(fl.Inventory().Trackers))
		})
	stopTracker := task("stop-tracker", "Stop the tracker (succeeds when it is not running)",
		`stop-tracker stops the tracker that start-tracker started on each tracker
host. Stopping a tracker that is not running succeeds.`, false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopTracker(cmd.Context()), len(fl.Inventory().Trackers))
		})
	create := task("create-torrent", "Pack --files-path on the seeder into TEMP/TAG.tgz and bring TAG.tgz.torrent back",
		`create-torrent runs murder create on the seeder host: it packs the files
path there into TEMP/TAG.tgz and writes TEMP/TAG.tgz.torrent, announcing to
the tracker host on tracker_port (an existing artifact of the same tag is
overwritten). The .torrent is then copied to the temp path on this machine,
where start-seeding and peer read it.`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.CreateTorrent(cmd.Context(), tag, filesPath), 1)
		})
	create.Flags().StringVar(&filesPath, "files-path", "", "directory on the seeder host to distribute; a leading ~/ is the remote user's home (required)")
	_ = create.MarkFlagRequired("files-path")
	create.Example = `  murder fleet -c murder.toml create-torrent --tag v42 --files-path /srv/build
  murder fleet -c murder.toml create-torrent --tag v42 --files-path '~/files'`
	download := task("download-torrent", "Bring TEMP/TAG.tgz.torrent from the seeder to the local temp path",
		`download-torrent copies TEMP/TAG.tgz.torrent from the seeder host to the
temp path on this machine, for when create-torrent ran elsewhere.`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.DownloadTorrent(cmd.Context(), tag), 1)
		})
	startSeeding := task("start-seeding", "Seed TAG on the seeder (detached) and wait until the tracker lists it",
		`start-seeding starts murder seed for TAG on the seeder host as a background
process (pid and log files in the temp path, max_upload_rate from the
inventory) and waits until the tracker lists it as a complete peer. A seeder
of TAG that already runs is left as it is. It reads TAG's .torrent from the
local temp path (see create-torrent and download-torrent).`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StartSeeding(cmd.Context(), tag), 1)
		})
	stopSeeding := task("stop-seeding", "Stop seeding TAG (succeeds when it is not running)",
		`stop-seeding stops the seeder of TAG on the seeder host. Stopping a seeder
that is not running succeeds.`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopSeeding(cmd.Context(), tag), 1)
		})
	stopAllSeeding := task("stop-all-seeding", "Stop every seeder murder started on the seeder host",
		`stop-all-seeding stops every seeder, of any tag, that murder started on the
seeder host (found by their pid files in the temp path).`, false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopAllSeeding(cmd.Context()), 1)
		})
	peer := task("peer", "Download TAG on every peer into --destination-path, with live progress",
		`peer copies TAG's .torrent from the local temp path to every peer and runs
murder peer there in the background: it downloads the artifact into the temp
path, verifies it and extracts it atomically into DESTINATION/TAG, then
seeds on for seed_time. A status line covers the whole fleet while it runs;
the task ends when every peer has its files in place or has failed (a peer
not done after peer_timeout fails).

A peer whose destination exists and is not empty is refused before it
downloads, unless --unsafe-please-delete. Other entries of DESTINATION, such
as earlier tags, are left alone. A peer of TAG still seeding from an earlier
run is stopped first.`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			rep, err := fl.Peer(cmd.Context(), tag, popt)
			n := 0
			if rep != nil {
				n = rep.Hosts
			}
			if n == 0 {
				n = len(fl.Inventory().Peers)
			}
			return hostFailure(cmd, err, n)
		})
	peer.Flags().StringVar(&popt.Destination, "destination-path", "", "absolute directory on each peer; the files land in DESTINATION/TAG (required)")
	peer.Flags().BoolVar(&popt.NoTagDirectory, "no-tag-directory", false, "place the files in the destination path itself, not in a TAG subdirectory")
	_ = peer.MarkFlagRequired("destination-path")
	peer.PreRunE = func(*cobra.Command, []string) error { return remoteDestination(popt.Destination) }
	peer.Flags().BoolVar(&popt.UnsafePleaseDelete, "unsafe-please-delete", false, "replace a destination that exists and is not empty (its contents are deleted)")
	peer.Example = `  murder fleet -c murder.toml peer --tag v42 --destination-path /srv/app
  murder fleet -c murder.toml peer --tag v42 --destination-path /srv/app/current \
      --no-tag-directory --unsafe-please-delete`
	stopPeering := task("stop-peering", "Stop the peers of TAG that still seed (succeeds when none run)",
		`stop-peering stops the peers of TAG that still seed after their files are
in place, on every peer. Stopping what is not running succeeds; the files
stay in place.`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopPeering(cmd.Context(), tag), len(fl.Inventory().Peers))
		})
	stopAllPeering := task("stop-all-peering", "Stop every peer murder started on the peers",
		`stop-all-peering stops every peer, of any tag, that murder started on the
peers (found by their pid files in the temp path). The files stay in place.`, false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopAllPeering(cmd.Context()), len(fl.Inventory().Peers))
		})
	clean := task("clean-temp-files", "Remove TAG's artifact, .torrent, and pid and log files of stopped daemons",
		`clean-temp-files removes TAG's artifact and .torrent from the temp path of
every host, the pid and log files of murder's daemons that are no longer
running, and the local copy of TAG's .torrent. Daemons that still run keep
their files; stop them first (stop-seeding, stop-peering, stop-tracker).`, true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.CleanTempFiles(cmd.Context(), tag), len(fl.Inventory().All()))
		})
	cmd.AddCommand(distribute, startTracker, stopTracker, create, download, startSeeding, stopSeeding,
		stopAllSeeding, peer, stopPeering, stopAllPeering, clean)
	return cmd
}
