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
	limit, roles      []string
	asJSON            bool
	dryRun            bool
}

func (ff *fleetFlags) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVarP(&ff.config, "config", "c", "murder.toml", "the inventory: hosts, roles, paths and SSH settings (see murder.toml.example)")
	f.BoolVar(&ff.acceptNewHostKeys, "accept-new-host-keys", false, "add the keys of hosts missing from known_hosts instead of failing them (a changed key still fails)")
	f.BoolVarP(&ff.verbose, "verbose", "v", false, "log SSH and host details to stderr")
	f.StringSliceVar(&ff.limit, "limit", nil, "work only on these hosts (as written in the inventory, or their names), comma-separated or repeated; a task with none of its hosts selected does nothing; the deploy's tracker and seeder always take part")
	f.StringSliceVar(&ff.roles, "role", nil, "work only on the hosts of these roles: tracker, seeder, peers (comma-separated or repeated)")
	f.BoolVar(&ff.asJSON, "json", false, "end standard output with one line of JSON: task, tag, hosts (host, status ok|failed|unreachable, error, seconds, bytes) and totals")
}

// open loads the inventory and connects the runner.
func (ff *fleetFlags) open(cmd *cobra.Command) (*deploy.Fleet, func(), error) {
	inv, err := fleet.LoadInventory(ff.config)
	if err != nil {
		return nil, nil, err
	}
	if _, err := inv.Select(ff.limit, ff.roles); err != nil {
		return nil, nil, usageError(err)
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
		Live:      isTerminal(cmd.OutOrStdout()) && !ff.asJSON,
		Logger:    logger,
		Limit:     ff.limit,
		Roles:     ff.roles,
		DryRun:    ff.dryRun,
		Verbose:   ff.verbose,
	})
	if err != nil {
		runner.Close()
		return nil, nil, usageError(err)
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

// Exit codes of deploy and the fleet tasks, besides 0 (every host ok) and
// exitUsage.
const (
	exitHostsFailed = 1 // the run went through, and some hosts failed
	exitNotStarted  = 3 // the run could not start: inventory, credentials, missing .torrent, ...
)

// report ends a deploy or fleet task: the table of failed hosts, the JSON
// result as the last line with --json, and the exit code for err.
func report(cmd *cobra.Command, res *deploy.Result, err error, asJSON bool) error {
	out := cmd.OutOrStdout()
	if err != nil {
		deploy.PrintFailures(out, err, res.Totals.Hosts)
	}
	if asJSON {
		if res.Error == "" && err != nil && res.Totals.Failed+res.Totals.Unreachable == 0 {
			res.Error = err.Error()
		}
		if werr := res.WriteJSON(out); werr != nil && err == nil {
			err = werr
		}
	}
	if err == nil {
		return nil
	}
	code := exitHostsFailed
	if !res.Started() {
		code = exitNotStarted
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	fe, ok := err.(*fleet.FailedHostsError)
	if !ok {
		fe = fleet.NewFailedHostsError(err, res.Totals.Hosts)
	}
	return &exitError{code: code, err: fe}
}

// notStarted reports a run that failed before it reached any host.
func notStarted(cmd *cobra.Command, task, tag string, err error, asJSON bool) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitUsage {
		return err
	}
	if asJSON {
		(&deploy.Result{Task: task, Tag: tag, Hosts: []deploy.HostResult{}, Error: err.Error()}).WriteJSON(cmd.OutOrStdout())
	}
	return &exitError{code: exitNotStarted, err: err}
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
hosts that failed and why; the others still finish when some fail. --limit
and --role choose among the hosts a task works on; --json ends standard
output with one line of JSON (task, tag, hosts with host, status
ok|failed|unreachable, error, seconds, bytes, and totals). --dry-run, on
every task, prints the command each selected host would run and runs
nothing: no host is contacted and no local file is written.

Exit codes: 0 every host ok; 1 some hosts failed; 2 usage error; 3 the task
could not start (inventory, credentials, missing .torrent).

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
  murder fleet -c murder.toml activate --tag v42 --destination-path /srv/app

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
	// task makes a fleet task; hosts says which hosts its result covers.
	task := func(use, short, long string, needTag bool, hosts func(*fleet.Inventory) []fleet.Host, run func(cmd *cobra.Command, fl *deploy.Fleet) error) *cobra.Command {
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
				name := strings.Fields(use)[0]
				fl, closeFn, err := ff.open(cmd)
				if err != nil {
					return notStarted(cmd, name, tag, err, ff.asJSON)
				}
				defer closeFn()
				// A task none of whose hosts --limit and --role select does
				// nothing.
				hs := fl.Pick(hosts(fl.Inventory()))
				if len(hs) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "==> %s: --limit and --role select none of its hosts; nothing to do\n", name)
					return report(cmd, fl.Result(name, tag, nil, nil), nil, ff.asJSON)
				}
				err = run(cmd, fl)
				return report(cmd, fl.Result(name, tag, hs, err), err, ff.asJSON)
			},
		}
		c.Flags().BoolVar(&ff.dryRun, "dry-run", false, "print the command each host would run, host by host, and run nothing: no host is contacted and no local file is written")
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
it again is cheap.`, false, func(inv *fleet.Inventory) []fleet.Host { return inv.All() },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.DistributeFiles(cmd.Context())
		})
	distribute.Flags().StringVar(&ff.binary, "binary", "", "the murder binary to copy (default: the one running); it must suit the hosts' OS and CPU")
	distribute.Example = `  murder fleet -c murder.toml distribute-files
  murder fleet -c murder.toml distribute-files --binary ./dist/murder-linux-arm64`

	startTracker := task("start-tracker", "Start the tracker (detached) unless it runs, and wait until it answers",
		`start-tracker starts murder tracker on each tracker host, listening on
tracker_port (with --store from [tracker] store), as a background process
with its pid and log files in the temp path, and waits until it answers.
A tracker that already runs is left as it is.`, false, func(inv *fleet.Inventory) []fleet.Host { return inv.Trackers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			_, err := fl.StartTracker(cmd.Context())
			return err
		})
	stopTracker := task("stop-tracker", "Stop the tracker (succeeds when it is not running)",
		`stop-tracker stops the tracker that start-tracker started on each tracker
host. Stopping a tracker that is not running succeeds.`, false, func(inv *fleet.Inventory) []fleet.Host { return inv.Trackers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.StopTracker(cmd.Context())
		})
	create := task("create-torrent", "Pack --files-path on the seeder into TEMP/TAG.tgz and bring TAG.tgz.torrent back",
		`create-torrent runs murder create on the seeder host: it packs the files
path there into TEMP/TAG.tgz and writes TEMP/TAG.tgz.torrent, announcing to
the tracker host on tracker_port (an existing artifact of the same tag is
overwritten). The .torrent is then copied to the temp path on this machine,
where start-seeding and peer read it.`, true, func(inv *fleet.Inventory) []fleet.Host { return []fleet.Host{inv.Seeder} },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.CreateTorrent(cmd.Context(), tag, filesPath)
		})
	create.Flags().StringVar(&filesPath, "files-path", "", "directory on the seeder host to distribute; a leading ~/ is the remote user's home (required)")
	_ = create.MarkFlagRequired("files-path")
	create.Example = `  murder fleet -c murder.toml create-torrent --tag v42 --files-path /srv/build
  murder fleet -c murder.toml create-torrent --tag v42 --files-path '~/files'`
	download := task("download-torrent", "Bring TEMP/TAG.tgz.torrent from the seeder to the local temp path",
		`download-torrent copies TEMP/TAG.tgz.torrent from the seeder host to the
temp path on this machine, for when create-torrent ran elsewhere.`, true, func(inv *fleet.Inventory) []fleet.Host { return []fleet.Host{inv.Seeder} },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.DownloadTorrent(cmd.Context(), tag)
		})
	startSeeding := task("start-seeding", "Seed TAG on the seeder (detached) and wait until the tracker lists it",
		`start-seeding starts murder seed for TAG on the seeder host as a background
process (pid and log files in the temp path, max_upload_rate from the
inventory) and waits until the tracker lists it as a complete peer. A seeder
of TAG that already runs is left as it is. It reads TAG's .torrent from the
local temp path (see create-torrent and download-torrent).`, true, func(inv *fleet.Inventory) []fleet.Host { return []fleet.Host{inv.Seeder} },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.StartSeeding(cmd.Context(), tag)
		})
	stopSeeding := task("stop-seeding", "Stop seeding TAG (succeeds when it is not running)",
		`stop-seeding stops the seeder of TAG on the seeder host. Stopping a seeder
that is not running succeeds.`, true, func(inv *fleet.Inventory) []fleet.Host { return []fleet.Host{inv.Seeder} },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.StopSeeding(cmd.Context(), tag)
		})
	stopAllSeeding := task("stop-all-seeding", "Stop every seeder murder started on the seeder host",
		`stop-all-seeding stops every seeder, of any tag, that murder started on the
seeder host (found by their pid files in the temp path).`, false, func(inv *fleet.Inventory) []fleet.Host { return []fleet.Host{inv.Seeder} },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.StopAllSeeding(cmd.Context())
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
run is stopped first.`, true, func(inv *fleet.Inventory) []fleet.Host { return inv.Peers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			_, err := fl.Peer(cmd.Context(), tag, popt)
			return err
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
stay in place.`, true, func(inv *fleet.Inventory) []fleet.Host { return inv.Peers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.StopPeering(cmd.Context(), tag)
		})
	stopAllPeering := task("stop-all-peering", "Stop every peer murder started on the peers",
		`stop-all-peering stops every peer, of any tag, that murder started on the
peers (found by their pid files in the temp path). The files stay in place.`, false, func(inv *fleet.Inventory) []fleet.Host { return inv.Peers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.StopAllPeering(cmd.Context())
		})
	clean := task("clean-temp-files", "Remove TAG's artifact, .torrent, and pid and log files of stopped daemons",
		`clean-temp-files removes TAG's artifact and .torrent from the temp path of
every host, the pid and log files of murder's daemons that are no longer
running, and the local copy of TAG's .torrent. Daemons that still run keep
their files; stop them first (stop-seeding, stop-peering, stop-tracker).`, true, func(inv *fleet.Inventory) []fleet.Host { return inv.All() },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.CleanTempFiles(cmd.Context(), tag)
		})
	var act deploy.ActivateOptions
	activate := task("activate", "Switch DESTINATION/current to TAG on the peers, in waves",
		`activate runs murder activate on every peer (or those --limit and --role
select): once every one of them (or --min-hosts) has DESTINATION/TAG in
place, each points DESTINATION/current at it, linking --shared paths and
running the --before-activate and --after-activate hooks in the release with
MURDER_TAG, MURDER_RELEASE and MURDER_PREVIOUS set, and removes releases
beyond --keep-releases. --canary hosts go first, then --batch at a time; the
first wave in which a host fails stops the rollout, and the hosts of later
waves stay on their previous release. Each host's hook output is kept in
TEMP/murder-TAG-hooks/HOST.log on this machine.`, true, func(inv *fleet.Inventory) []fleet.Host { return inv.Peers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.Activate(cmd.Context(), tag, act)
		})
	af := activate.Flags()
	af.StringVar(&act.Destination, "destination-path", "", "absolute directory on each peer that holds the releases, as given to peer (required)")
	af.IntVar(&act.KeepReleases, "keep-releases", 0, "remove the releases beyond the N most recently activated (never the active one or the one before it); 0 keeps all")
	af.StringArrayVar(&act.Shared, "shared", nil, "a path inside the release to link to DESTINATION/shared/PATH, which must exist; repeat for more")
	af.StringVar(&act.BeforeActivate, "before-activate", "", "shell command run in DESTINATION/TAG before the switch; failing leaves the host as it was")
	af.StringVar(&act.AfterActivate, "after-activate", "", "shell command run in DESTINATION/TAG after the switch, e.g. a restart; failing switches the host back")
	af.IntVar(&act.MinHosts, "min-hosts", 0, "activate once at least N hosts have the tag in place (default: all of them)")
	af.IntVar(&act.Canary, "canary", 0, "switch N hosts first, on their own (0: no canary wave)")
	af.IntVar(&act.Batch, "batch", 0, "after the canary wave, switch N hosts at a time (0: all at once)")
	af.Lookup("dry-run").Usage = "print the command each host would run and the waves, and run nothing"
	_ = activate.MarkFlagRequired("destination-path")
	activate.PreRunE = func(*cobra.Command, []string) error {
		if act.KeepReleases < 0 || act.MinHosts < 0 || act.Canary < 0 || act.Batch < 0 {
			return usageError(errors.New("--keep-releases, --min-hosts, --canary and --batch take 0 or more"))
		}
		return remoteDestination(act.Destination)
	}
	activate.Example = `  murder fleet -c murder.toml activate --tag v42 --destination-path /srv/app \
      --shared config/database.yml --after-activate 'sudo systemctl restart app' --canary 1 --batch 10
  murder fleet -c murder.toml activate --tag v42 --destination-path /srv/app --limit web1,web2 --dry-run`

	var rbDest string
	rollback := task("rollback", "Point DESTINATION/current back at the previous release on the peers",
		`rollback runs murder rollback on every peer (or those --limit and --role
select): DESTINATION/current goes back to the release active before, as
recorded on each host, and each host says which. A host with no earlier
release fails and is left as it was.`, false, func(inv *fleet.Inventory) []fleet.Host { return inv.Peers },
		func(cmd *cobra.Command, fl *deploy.Fleet) error {
			return fl.Rollback(cmd.Context(), rbDest)
		})
	rollback.Flags().StringVar(&rbDest, "destination-path", "", "absolute directory on each peer that holds the releases (required)")
	_ = rollback.MarkFlagRequired("destination-path")
	rollback.PreRunE = func(*cobra.Command, []string) error { return remoteDestination(rbDest) }
	rollback.Example = `  murder fleet -c murder.toml rollback --destination-path /srv/app
  murder fleet -c murder.toml rollback --destination-path /srv/app --limit web3`

	cmd.AddCommand(distribute, startTracker, stopTracker, create, download, startSeeding, stopSeeding,
		stopAllSeeding, peer, stopPeering, stopAllPeering, clean, activate, rollback)
	return cmd
}
