package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/deploy"
)

func newDeployCmd() *cobra.Command {
	ff := &fleetFlags{}
	var (
		opt      deploy.Options
		local    int
		timeout  time.Duration
		keepTemp bool
		linger   time.Duration
		upload   string
		download string
		act      deploy.ActivateOptions
		activate bool
	)
	cmd := &cobra.Command{
		Use:   "deploy --files-path PATH --destination-path DIR [--tag TAG] [-c murder.toml | --local N]",
		Short: "Distribute a directory to every host in one command",
		Long: `deploy runs Murder's whole workflow in one command.

With -c murder.toml (the default) it works on the fleet of that inventory
over SSH: copy murder to the hosts, start the tracker unless it runs, pack
--files-path on the seeder host into TEMP/TAG.tgz with its .torrent, seed
it, have every peer download and extract it into DIR/TAG, stop seeding, stop
the tracker if this run started it, and clean the temp files. Rates, seed
time and peer timeout come from the inventory. It prints live progress, a
table of the hosts that failed and why, and a summary; the others still
finish when some hosts fail. --limit and --role deploy to some of the peers
only (the tracker and seeder hosts always take part).

With --activate, once every peer (or --min-hosts of them) has DIR/TAG in
place, each switches DIR/current to it as murder activate does (shared
links, --before-activate and --after-activate hooks run in DIR/TAG with
MURDER_TAG, MURDER_RELEASE and MURDER_PREVIOUS set, --keep-releases),
--canary hosts first, then --batch hosts at a time; the first wave in
which a host fails stops the rollout, and the hosts of later waves stay on
their previous release. On a fleet each host's hook output is kept in
TEMP/murder-TAG-hooks/HOST.log on this machine.

With --local N it runs the same pipeline on this machine alone, without SSH
or inventory: a tracker, a seeder and N peers as processes on 127.0.0.1,
peer K extracting into DIR/peer-K/TAG. --files-path is then a local
directory, or a single file, which keeps its name instead of a tag.

Earlier tags in DIR are left alone; an existing, non-empty DIR/TAG (DIR with
--no-tag-directory) is refused unless --unsafe-please-delete.

Rates are bytes per second: 10MB (10,000,000), 50MiB (52,428,800), 100M
(104,857,600, as curl and aria2 read it).

--json ends standard output with one line of JSON: task, tag, hosts (host,
status ok|failed|unreachable, error, seconds, bytes) and totals.

Exit codes: 0 every host ok; 1 the deploy ran and some hosts failed (or
were not activated); 2 usage error; 3 the deploy could not start (no
inventory, no SSH credentials, the tracker or files could not be set up
before any peer).`,
		Example: `  # 8 peers on this machine, tag from the directory's name and the time:
  murder deploy --local 8 --files-path ./build --destination-path /tmp/out

  # the fleet of murder.toml:
  murder deploy -c murder.toml --tag v42 --files-path /srv/build --destination-path /srv/app

  # switch /srv/app/current on every host, one canary first, then 10 at a time:
  murder deploy -c murder.toml --tag v42 --files-path /srv/build --destination-path /srv/app \
      --activate --keep-releases 5 --shared config/database.yml \
      --after-activate 'sudo systemctl restart app' --canary 1 --batch 10

  # replace what an earlier run of the same tag left:
  murder deploy -c murder.toml --tag v42 --files-path /srv/build \
      --destination-path /srv/app --unsafe-please-delete`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if opt.Tag != "" || cmd.Flags().Changed("tag") {
				if err := deploy.ValidTag(opt.Tag); err != nil {
					return usageError(errors.New(strings.TrimPrefix(err.Error(), "deploy: ")))
				}
			}
			var actOnly []string
			for _, name := range []string{"keep-releases", "shared", "before-activate", "after-activate", "min-hosts", "canary", "batch"} {
				if cmd.Flags().Changed(name) {
					actOnly = append(actOnly, "--"+name)
				}
			}
			if len(actOnly) > 0 && !activate {
				return usageError(fmt.Errorf("%s only apply with --activate", strings.Join(actOnly, ", ")))
			}
			if act.KeepReleases < 0 || act.MinHosts < 0 || act.Canary < 0 || act.Batch < 0 {
				return usageError(errors.New("--keep-releases, --min-hosts, --canary and --batch take 0 or more"))
			}
			if activate && opt.NoTagDirectory {
				return usageError(errors.New("--activate switches DIR/current between DIR/TAG directories: drop --no-tag-directory"))
			}
			var actp *deploy.ActivateOptions
			if activate {
				actp = &act
			}
			if cmd.Flags().Changed("local") {
				if cmd.Flags().Changed("dry-run") {
					return usageError(errors.New("--dry-run shows what a deploy with -c would run on each host: drop it with --local"))
				}
				if cmd.Flags().Changed("limit") || cmd.Flags().Changed("role") {
					return usageError(errors.New("--limit and --role choose hosts of an inventory: drop them with --local"))
				}
				if local < 1 {
					return usageError(fmt.Errorf("--local %d: want at least 1 peer", local))
				}
				if cmd.Flags().Changed("config") {
					return usageError(errors.New("--local runs without an inventory: drop -c"))
				}
				if linger < 0 {
					return usageError(fmt.Errorf("--linger %s: want a positive duration", linger))
				}
				if timeout < 0 {
					return usageError(fmt.Errorf("--timeout %s: want a positive duration", timeout))
				}
				for _, r := range []struct{ name, v string }{{"--max-upload-rate", upload}, {"--max-download-rate", download}} {
					if r.v == "" {
						continue
					}
					if _, err := bytesize.ParseRate(r.v); err != nil {
						return usageError(fmt.Errorf("%s: %w", r.name, err))
					}
				}
				sum, err := deploy.Local(ctx, deploy.LocalConfig{
					Peers:              local,
					FilesPath:          opt.FilesPath,
					Destination:        opt.Destination,
					Tag:                opt.Tag,
					NoTagDirectory:     opt.NoTagDirectory,
					UnsafePleaseDelete: opt.UnsafePleaseDelete,
					Timeout:            timeout,
					MaxUploadRate:      upload,
					MaxDownloadRate:    download,
					KeepTemp:           keepTemp,
					Activate:           actp,
					Linger:             linger,
					Out:                cmd.OutOrStdout(),
					Live:               isTerminal(cmd.OutOrStdout()) && !ff.asJSON,
					Logger:             slog.New(slog.DiscardHandler),
					Verbose:            ff.verbose,
				})
				if sum == nil || sum.Result == nil {
					if err == nil {
						return nil
					}
					return notStarted(cmd, "deploy", opt.Tag, err, ff.asJSON)
				}
				return report(cmd, sum.Result, err, ff.asJSON)
			}
			var localOnly []string
			for _, name := range []string{"max-upload-rate", "max-download-rate", "timeout", "keep-temp", "linger"} {
				if cmd.Flags().Changed(name) {
					localOnly = append(localOnly, "--"+name)
				}
			}
			if len(localOnly) > 0 {
				return usageError(fmt.Errorf("%s only apply to --local; with -c set max_upload_rate, max_download_rate and peer_timeout in murder.toml", strings.Join(localOnly, ", ")))
			}
			if opt.Tag == "" {
				return usageError(errors.New("--tag is required with -c (it names the deploy on every host)"))
			}
			if err := remoteDestination(opt.Destination); err != nil {
				return err
			}
			fl, closeFn, err := ff.open(cmd)
			if err != nil {
				return notStarted(cmd, "deploy", opt.Tag, err, ff.asJSON)
			}
			defer closeFn()
			opt.Activate = actp
			if ff.dryRun {
				err := fl.Plan(opt)
				return report(cmd, fl.Result("deploy", opt.Tag, nil, err), err, ff.asJSON)
			}
			sum, err := fl.Deploy(ctx, opt)
			if sum != nil {
				sum.Print(fl)
			}
			return report(cmd, fl.Result("deploy", opt.Tag, fl.Pick(fl.Inventory().Peers), err), err, ff.asJSON)
		},
	}
	ff.register(cmd)
	pf := cmd.PersistentFlags()
	pf.Lookup("config").Usage = "-c: the inventory (hosts, roles, paths, rates, SSH settings; see murder.toml.example)"
	pf.Lookup("accept-new-host-keys").Usage = "-c: add the keys of hosts missing from known_hosts instead of failing them (a changed key still fails)"
	pf.Lookup("verbose").Usage = "print when each step started and how long it took in the summary; with -c also log SSH and host details to stderr"
	f := cmd.Flags()
	f.StringVar(&opt.FilesPath, "files-path", "", "directory to distribute: on the seeder host with -c, on this machine with --local (required)")
	f.StringVar(&opt.Destination, "destination-path", "", "directory that receives TAG/ on each peer: an absolute path on the hosts with -c; with --local, peer K uses DIR/peer-K (required)")
	f.StringVar(&opt.Tag, "tag", "", "name of the deploy: the artifact is TEMP/TAG.tgz and files land in DIR/TAG; use letters, digits, '.', '-' and '_' (required with -c; with --local the default is the files path's base name plus a UTC timestamp, e.g. build-20260101-120000)")
	f.BoolVar(&opt.NoTagDirectory, "no-tag-directory", false, "place the files in --destination-path itself, not in a TAG subdirectory")
	f.BoolVar(&opt.UnsafePleaseDelete, "unsafe-please-delete", false, "replace a destination that exists and is not empty (its contents are deleted)")
	f.IntVar(&local, "local", 0, "run on this machine alone with N peers, N >= 1 (no SSH, no inventory)")
	f.StringVar(&ff.binary, "binary", "", "-c: the murder binary to copy to the hosts (default: the one running); it must suit the hosts' OS and CPU")
	f.DurationVar(&timeout, "timeout", 0, "--local: fail the run if it has not finished after this long, e.g. 10m (default 1h)")
	f.StringVar(&upload, "max-upload-rate", "", "--local: upload limit per process, bytes per second, e.g. 50MB (default: no limit)")
	f.StringVar(&download, "max-download-rate", "", "--local: download limit per peer, bytes per second, e.g. 100MB (default: no limit)")
	f.BoolVar(&ff.dryRun, "dry-run", false, "-c: print what each host would run, step by step, and run nothing")
	f.BoolVar(&activate, "activate", false, "switch DIR/current to TAG on every peer once they all (or --min-hosts) have it")
	f.IntVar(&act.KeepReleases, "keep-releases", 0, "--activate: on each peer, remove the releases beyond the N most recently activated (never the active one or the one before it); 0 keeps all")
	f.StringArrayVar(&act.Shared, "shared", nil, "--activate: a path inside the release to link to DIR/shared/PATH, which must exist on each peer; repeat for more")
	f.StringVar(&act.BeforeActivate, "before-activate", "", "--activate: shell command run on each peer in DIR/TAG before its switch; failing leaves the host as it was")
	f.StringVar(&act.AfterActivate, "after-activate", "", "--activate: shell command run on each peer in DIR/TAG after its switch, e.g. a restart; failing switches the host back")
	f.IntVar(&act.MinHosts, "min-hosts", 0, "--activate: activate once at least N peers have the tag in place (default: all of them)")
	f.IntVar(&act.Canary, "canary", 0, "--activate: switch N peers first, on their own (0: no canary wave)")
	f.IntVar(&act.Batch, "batch", 0, "--activate: after the canary wave, switch N peers at a time (0: all at once)")
	f.DurationVar(&linger, "linger", 0, "--local: keep the tracker and its live page (http://TRACKER/) up this long after the peers are done, e.g. 1m")
	f.BoolVar(&keepTemp, "keep-temp", false, "--local: keep the work directory (artifact, .torrent, logs) after success too; its path is printed")
	_ = cmd.MarkFlagRequired("files-path")
	_ = cmd.MarkFlagRequired("destination-path")
	return cmd
}
