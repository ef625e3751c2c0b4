package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

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
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
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
		Long: `fleet runs one step of Murder's workflow on the hosts listed in murder.toml,
over SSH (host keys checked against known_hosts; the ssh agent and identity
files authenticate). Every task works on all its hosts at once (bounded by
ssh.concurrency), reports per host, and exits non-zero when any host failed
while the others still finish.

A usual run, as with Murder's Capistrano tasks:
  murder fleet -c murder.toml distribute-files
  murder fleet -c murder.toml start-tracker
  murder fleet -c murder.toml create-torrent --tag v42 --files-path /srv/build
  murder fleet -c murder.toml start-seeding --tag v42
  murder fleet -c murder.toml peer --tag v42 --destination-path /srv/app
  murder fleet -c murder.toml stop-seeding --tag v42
  murder fleet -c murder.toml stop-tracker

murder deploy does all of it in one command.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("fleet: name a task (murder fleet --help lists them)")
			}
			return fmt.Errorf("fleet: unknown task %q (murder fleet --help lists them)", args[0])
		},
	}
	ff.register(cmd)

	var tag, filesPath string
	var popt deploy.PeerOptions
	task := func(use, short string, needTag bool, run func(cmd *cobra.Command, fl *deploy.Fleet) error) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if needTag {
					if err := deploy.ValidTag(tag); err != nil {
						return err
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
			c.Flags().StringVar(&tag, "tag", "", "name of the deploy: the artifact is TEMP/TAG.tgz and peers extract into DESTINATION/TAG (required)")
		}
		return c
	}
	distribute := task("distribute-files", "Copy the murder binary to remote_murder_path on every host", false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.DistributeFiles(cmd.Context()), len(fl.Inventory().All()))
		})
	distribute.Flags().StringVar(&ff.binary, "binary", "", "the murder binary to copy (default: this one); it must suit the hosts' OS and CPU")

	startTracker := task("start-tracker", "Start the tracker (detached) unless it runs, and wait until it answers", false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			_, err := fl.StartTracker(cmd.Context())
			return hostFailure(cmd, err, 1)
		})
	stopTracker := task("stop-tracker", "Stop the tracker (succeeds when it is not running)", false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopTracker(cmd.Context()), 1)
		})
	create := task("create-torrent", "Pack --files-path on the seeder into TEMP/TAG.tgz and bring TAG.tgz.torrent back", true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.CreateTorrent(cmd.Context(), tag, filesPath), 1)
		})
	create.Flags().StringVar(&filesPath, "files-path", "", "directory on the seeder host to distribute (required)")
	_ = create.MarkFlagRequired("files-path")
	download := task("download-torrent", "Bring TEMP/TAG.tgz.torrent from the seeder to the local temp path", true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.DownloadTorrent(cmd.Context(), tag), 1)
		})
	startSeeding := task("start-seeding", "Seed TAG on the seeder (detached) and wait until the tracker lists it", true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StartSeeding(cmd.Context(), tag), 1)
		})
	stopSeeding := task("stop-seeding", "Stop seeding TAG (succeeds when it is not running)", true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopSeeding(cmd.Context(), tag), 1)
		})
	stopAllSeeding := task("stop-all-seeding", "Stop every seeder murder started on the seeder host", false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopAllSeeding(cmd.Context()), 1)
		})
	peer := task("peer", "Download TAG on every peer into --destination-path, with live progress", true,
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
	peer.Flags().BoolVar(&popt.NoTagDirectory, "no-tag-directory", false, "place the files in --destination-path itself, not in a TAG subdirectory")
	_ = peer.MarkFlagRequired("destination-path")
	peer.Flags().BoolVar(&popt.UnsafePleaseDelete, "unsafe-please-delete", false, "replace a destination that exists and is not empty (its contents are deleted)")
	stopPeering := task("stop-peering", "Stop the peers of TAG that still seed (succeeds when none run)", true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopPeering(cmd.Context(), tag), len(fl.Inventory().All()))
		})
	stopAllPeering := task("stop-all-peering", "Stop every peer murder started on the peers", false,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.StopAllPeering(cmd.Context()), len(fl.Inventory().All()))
		})
	clean := task("clean-temp-files", "Remove TAG's artifact, .torrent, and pid and log files of stopped daemons", true,
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return hostFailure(cmd, fl.CleanTempFiles(cmd.Context(), tag), len(fl.Inventory().All()))
		})
	cmd.AddCommand(distribute, startTracker, stopTracker, create, download, startSeeding, stopSeeding,
		stopAllSeeding, peer, stopPeering, stopAllPeering, clean)
	return cmd
}
