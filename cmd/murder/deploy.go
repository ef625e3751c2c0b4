package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/deploy"
)

func newDeployCmd() *cobra.Command {
	ff := &fleetFlags{}
	var (
		opt      deploy.Options
		local    int
		timeout  time.Duration
		keepTemp bool
		upload   string
		download string
	)
	cmd := &cobra.Command{
		Use:   "deploy --files-path P --destination-path D [--tag T] [-c murder.toml | --local N]",
		Short: "Distribute a directory to every host in one command",
		Long: `deploy runs Murder's whole workflow in one command.

With -c murder.toml it works on a fleet over SSH: copy murder to the hosts,
start the tracker unless it runs, pack --files-path on the seeder host into
TEMP/TAG.tgz with its .torrent, seed it, have every peer download and extract
it into DESTINATION/TAG, stop seeding, stop the tracker if this run started
it, and clean the temp files. It prints live progress, a table of the hosts
that failed and why, and a summary; the exit code is non-zero when any host
failed, while the others still finish.

With --local N it runs the same pipeline on this machine alone, without SSH:
a tracker, a seeder and N peers as processes on 127.0.0.1, each peer
extracting into DESTINATION/peer-K/TAG. --files-path is then a local
directory (or a single file).

Earlier tags in DESTINATION are left alone; an existing, non-empty
DESTINATION/TAG is refused unless --unsafe-please-delete.`,
		Example: `  murder deploy --local 8 --files-path ./build --destination-path /tmp/out
  murder deploy -c murder.toml --tag v42 --files-path /srv/build --destination-path /srv/app`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if local > 0 || cmd.Flags().Changed("local") {
				if cmd.Flags().Changed("config") {
					return errors.New("--local runs without an inventory: drop -c")
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
					Out:                cmd.OutOrStdout(),
					Live:               isTerminal(cmd.OutOrStdout()),
					Logger:             slog.New(slog.DiscardHandler),
				})
				if err != nil && sum != nil {
					return hostFailure(cmd, err, sum.Hosts)
				}
				return err
			}
			if upload != "" || download != "" || timeout != 0 || keepTemp {
				return errors.New("--max-upload-rate, --max-download-rate, --timeout and --keep-temp apply to --local; set rates and peer_timeout in murder.toml")
			}
			if opt.Tag == "" {
				return errors.New("--tag is required with -c (it names the deploy on every host)")
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
	f := cmd.Flags()
	f.IntVar(&local, "local", 0, "run on this machine alone with N peers (no SSH, no inventory)")
	f.StringVar(&opt.Tag, "tag", "", "name of the deploy: files land in DESTINATION/TAG (required with -c; with --local the default is the files path's base name plus a UTC timestamp)")
	f.StringVar(&opt.FilesPath, "files-path", "", "directory to distribute: on the seeder host with -c, on this machine with --local (required)")
	f.StringVar(&opt.Destination, "destination-path", "", "directory on each peer that receives TAG/ (required)")
	f.BoolVar(&opt.NoTagDirectory, "no-tag-directory", false, "place the files in --destination-path itself, not in a TAG subdirectory")
	f.BoolVar(&opt.UnsafePleaseDelete, "unsafe-please-delete", false, "replace a destination that exists and is not empty (its contents are deleted)")
	f.StringVar(&ff.binary, "binary", "", "the murder binary to copy to the hosts (default: this one)")
	f.DurationVar(&timeout, "timeout", 0, "--local: bound on the whole run (default 1h)")
	f.StringVar(&upload, "max-upload-rate", "", "--local: upload limit per process in bytes per second, e.g. 50MB (default: none)")
	f.StringVar(&download, "max-download-rate", "", "--local: download limit per peer in bytes per second (default: none)")
	f.BoolVar(&keepTemp, "keep-temp", false, "--local: keep the work directory with the artifact and the logs")
	_ = cmd.MarkFlagRequired("files-path")
	_ = cmd.MarkFlagRequired("destination-path")
	return cmd
}
