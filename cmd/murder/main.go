// Command murder deploys files to many servers over BitTorrent.
//
// Each subcommand is a thin wrapper: it parses flags into a package's
// Config, calls one function and maps the error to an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is stamped at build time with
// -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a specific exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "murder",
		Short: "Deploy files to many servers over BitTorrent",
		Long: `murder packs a directory into an archive, makes a .torrent of it and
spreads it to every server of a fleet over BitTorrent: a tracker coordinates,
a seeder serves the first copy and the peers copy from each other.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newSeedCmd(),
		newPeerCmd(),
		newCreateCmd(),
		newShowCmd(),
		newTrackerCmd(),
		newFleetCmd(),
		newDeployCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print murder's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "murder %s\n", version)
			return nil
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "murder: %v\n", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
