package main

import (
	"errors"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/progress"
)

// newFollowProgressCmd is what the fleet runs on a host to watch a
// detached peer: it copies the events of the peer's --progress json file
// to standard output and ends after the final one, while the peer seeds
// on. Hidden: it is part of murder's own protocol, not a user's command.
func newFollowProgressCmd() *cobra.Command {
	var pid int
	cmd := &cobra.Command{
		Use:    "follow-progress --pid PID FILE",
		Short:  "Copy a detached peer's progress events to stdout until done or error",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alive := func() bool {
				err := syscall.Kill(pid, 0)
				return err == nil || errors.Is(err, syscall.EPERM)
			}
			return progress.Follow(cmd.Context(), args[0], alive, 0, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&pid, "pid", 0, "process id of the peer that writes FILE (required)")
	_ = cmd.MarkFlagRequired("pid")
	return cmd
}
