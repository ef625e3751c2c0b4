package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/release"
)

func newActivateCmd() *cobra.Command {
	var (
		opt    release.Options
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "activate --destination-path DIR --tag TAG [--keep-releases N] [--shared PATH]...",
		Short: "Point DIR/current at the release DIR/TAG on this host",
		Long: `activate makes DIR/TAG, a release murder peer placed, the active one on
this host, as Capistrano's deploy:symlink did:

  - each --shared PATH of the release becomes a link to DIR/shared/PATH
    (which must exist; what the release held there is replaced);
  - --before-activate runs in DIR/TAG; if it fails nothing changes;
  - DIR/current becomes a relative symbolic link to TAG, replaced by a
    rename, so it is never missing;
  - the activation is added to DIR/.murder-releases, which rollback reads;
  - --after-activate runs in DIR/TAG; if it fails, current is switched back;
  - with --keep-releases N, releases beyond the N most recently activated
    are removed, never the active one or the one before it (a failure to
    remove is reported; the activation stands).

Hooks run with /bin/sh, with MURDER_TAG, MURDER_RELEASE (DIR/TAG) and
MURDER_PREVIOUS (the tag active before, or empty) in the environment; their
output goes to standard error. On any failure DIR is left as it was.
Activating the release that is already active does nothing.`,
		Example: `  murder activate --destination-path /srv/app --tag v42 --keep-releases 5 \
      --shared config/database.yml --shared log \
      --after-activate 'systemctl restart app'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := release.ValidTag(opt.Tag); err != nil {
				return usageError(err)
			}
			if opt.KeepReleases < 0 {
				return usageError(fmt.Errorf("--keep-releases %d: want 0 (keep all) or more", opt.KeepReleases))
			}
			opt.HookOutput = cmd.ErrOrStderr()
			res, err := release.Activate(cmd.Context(), opt)
			if err != nil {
				return err
			}
			return printRelease(cmd.OutOrStdout(), res, asJSON, "activated")
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Destination, "destination-path", "", "the directory that holds the releases, as given to murder peer (required)")
	f.StringVar(&opt.Tag, "tag", "", "the release to activate: the directory DIR/TAG (required)")
	f.IntVar(&opt.KeepReleases, "keep-releases", 0, "remove the releases beyond the N most recently activated (never the active one or the one before it); 0 keeps all")
	f.StringArrayVar(&opt.Shared, "shared", nil, "a path inside the release to link to DIR/shared/PATH, e.g. config/database.yml or log; repeat for more")
	f.StringVar(&opt.BeforeActivate, "before-activate", "", "shell command run in DIR/TAG before the switch; failing cancels the activation")
	f.StringVar(&opt.AfterActivate, "after-activate", "", "shell command run in DIR/TAG after the switch, e.g. a restart; failing switches back")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object: tag, previous, unchanged, pruned, prune_error")
	_ = cmd.MarkFlagRequired("destination-path")
	_ = cmd.MarkFlagRequired("tag")
	return cmd
}

func newRollbackCmd() *cobra.Command {
	var (
		dest   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "rollback --destination-path DIR",
		Short: "Point DIR/current back at the release active before, on this host",
		Long: `rollback points DIR/current back at the release that was active before
the current one (from DIR/.murder-releases, skipping releases whose
directory is gone), says which, and drops the current activation from the
history, so a second rollback goes one further back. The release rolled back
from stays on disk. It fails, changing nothing, when there is no earlier
release.`,
		Example: `  murder rollback --destination-path /srv/app`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := release.Rollback(cmd.Context(), dest)
			if err != nil {
				return err
			}
			return printRelease(cmd.OutOrStdout(), res, asJSON, "rolled back")
		},
	}
	cmd.Flags().StringVar(&dest, "destination-path", "", "the directory that holds the releases (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object: tag (now active), previous")
	_ = cmd.MarkFlagRequired("destination-path")
	return cmd
}

func printRelease(w io.Writer, res *release.Result, asJSON bool, verb string) error {
	if asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	switch {
	case res.Unchanged:
		fmt.Fprintf(w, "%s is already active\n", res.Tag)
	case verb == "rolled back":
		fmt.Fprintf(w, "rolled back from %s to %s\n", res.Previous, res.Tag)
	case res.Previous == "":
		fmt.Fprintf(w, "activated %s\n", res.Tag)
	default:
		fmt.Fprintf(w, "activated %s (previous: %s)\n", res.Tag, res.Previous)
	}
	if len(res.Pruned) > 0 {
		fmt.Fprintf(w, "removed old releases: %s\n", strings.Join(res.Pruned, ", "))
	}
	if res.PruneError != "" {
		return errors.New(res.PruneError + " (the activation stands)")
	}
	return nil
}
