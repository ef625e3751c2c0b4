package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/agent"
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
table of the hosts that failed and why, and a summary; it exits 1 when any
host failed, while the others still finish.

With --local N it runs the same pipeline on this machine alone, without SSH
or inventory: a tracker, a seeder and N peers as processes on 127.0.0.1,
peer K extracting into DIR/peer-K/TAG. --files-path is then a local
directory, or a single file, which keeps its name instead of a tag.

Earlier tags in DIR are left alone; an existing, non-empty DIR/TAG (DIR with
--no-tag-directory) is refused unless --unsafe-please-delete.

Rates are bytes per second: 10MB (10,000,000), 50MiB (52,428,800), 100M
(104,857,600, as curl and aria2 read it).`,
		Example: `  # 8 peers on this machine, tag from the directory's name and the time:
  murder deploy --local 8 --files-path ./build --destination-path /tmp/out

  # the fleet of murder.toml:
  murder deploy -c murder.toml --tag v42 --files-path /srv/build --destination-path /srv/app

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
			if cmd.Flags().Changed("local") {
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
					if _, err := agent.ParseRate(r.v); err != nil {
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
					Linger:             linger,
					Out:                cmd.OutOrStdout(),
					Live:               isTerminal(cmd.OutOrStdout()),
					Logger:             slog.New(slog.DiscardHandler),
					Verbose:            ff.verbose,
				})
				if err != nil && sum != nil {
					return hostFailure(cmd, err, sum.Hosts)
				}
				return err
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
				return err
			}
			defer closeFn()
			sum, err := fl.Deploy(ctx, opt)
			if sum != nil {
				sum.Print(fl)
			}
			return hostFailure(cmd, err, len(fl.Inventory().All()))
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
	f.DurationVar(&linger, "linger", 0, "--local: keep the tracker and its live page (http://TRACKER/) up this long after the peers are done, e.g. 1m")
	f.BoolVar(&keepTemp, "keep-temp", false, "--local: keep the work directory (artifact, .torrent, logs) after success too; its path is printed")
	_ = cmd.MarkFlagRequired("files-path")
	_ = cmd.MarkFlagRequired("destination-path")
	return cmd
}
