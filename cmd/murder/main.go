// Command murder deploys files to many servers over BitTorrent.
//
// Each subcommand is a thin wrapper: it parses flags into a package's
// Config, calls one function and maps the error to an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// exitUsage is the exit code of a usage error: an unknown command or flag,
// a bad flag value, a missing required flag or a wrong number of
// arguments. Runtime failures exit 1 unless the command says otherwise.
const exitUsage = 2

// exitError carries a specific exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a usage error (exit code 2), unless it already
// carries an exit code.
func usageError(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "murder",
		Short: "Deploy files to many servers over BitTorrent",
		Long: `murder packs a directory into an archive, makes a .torrent of it and
spreads it to every server of a fleet over BitTorrent: a tracker coordinates,
a seeder serves the first copy and the peers copy from each other.

Exit codes: 0 success, 1 failure (for fleet and deploy: some hosts failed),
2 usage error (unknown command or flag, bad or missing flag value), 3 (fleet
and deploy) the run could not start: inventory, credentials, missing files.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable, so that a missing or unknown command is a usage error
		// instead of help on stdout and exit 0.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return errors.New(msg)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			return usageError(fmt.Errorf("name a command: %s", strings.Join(names, ", ")))
		},
		SuggestionsMinimumDistance: 2,
		// cobra adds --version, which prints what `murder version` prints.
		Version: versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}")
	// Unknown flags before a mistyped command would hide the command's
	// name: report the command instead.
	root.FParseErrWhitelist.UnknownFlags = true
	// The root's usage shows only "murder [command]", though it runs.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable .HasParent}}", 1))
	root.AddCommand(
		newVersionCmd(),
		newSeedCmd(),
		newPeerCmd(),
		newCreateCmd(),
		newShowCmd(),
		newTrackerCmd(),
		newFleetCmd(),
		newDeployCmd(),
		newActivateCmd(),
		newRollbackCmd(),
		newStatusCmd(),
	)
	addLogFormatFlag(root)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		_, err := logFormat(cmd)
		return err
	}
	root.SetHelpCommand(newHelpCmd(root))
	root.InitDefaultCompletionCmd()
	classifyUsageErrors(root)
	return root
}

// classifyUsageErrors turns the errors cobra and pflag find before a
// command runs (bad flags and values, wrong arguments, missing required
// flags) into usage errors, for every command under root.
func classifyUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				err := args(cmd, a)
				if err == nil {
					return nil
				}
				// cobra.NoArgs calls an argument an unknown command, which
				// misleads where there are no subcommands.
				if !cmd.HasSubCommands() && len(a) > 0 && strings.HasPrefix(err.Error(), "unknown command ") {
					err = fmt.Errorf("unexpected argument %q (this command takes none)", a[0])
				}
				return usageError(err)
			}
		}
		// cobra checks required flags after PreRunE, with an error of no
		// particular type; checking them first here classifies them.
		pre, preE := c.PreRun, c.PreRunE
		c.PreRun = nil
		c.PreRunE = func(cmd *cobra.Command, a []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return usageError(err)
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageError(err)
			}
			if preE != nil {
				return preE(cmd, a)
			}
			if pre != nil {
				pre(cmd, a)
			}
			return nil
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// newHelpCmd replaces cobra's help command, which answers an unknown topic
// with exit code 0.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "help prints the help of the named command, as murder COMMAND --help does.",
		Args: func(_ *cobra.Command, args []string) error {
			_, err := helpTopic(root, args)
			return err
		},
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := helpTopic(root, args)
			if err != nil {
				return err
			}
			c.InitDefaultHelpFlag()
			return c.Help()
		},
	}
}

// helpTopic finds the command that the words of args name.
func helpTopic(root *cobra.Command, args []string) (*cobra.Command, error) {
	c := root
	for _, a := range args {
		var next *cobra.Command
		for _, sub := range c.Commands() {
			if sub.Name() == a || sub.HasAlias(a) {
				next = sub
				break
			}
		}
		if next == nil {
			return nil, usageError(fmt.Errorf("unknown help topic %q", strings.Join(args, " ")))
		}
		c = next
	}
	return c, nil
}

// run executes root with args, reports an error on stderr in one line
// (with a hint after a usage error) and returns the exit code.
func run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if cmd == nil {
		cmd = root
	}
	if f, ferr := logFormat(cmd); ferr == nil && f == logJSON {
		writeErrorJSON(stderr, cmd.CommandPath(), errorLine(cmd, err), code)
		return code
	}
	fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), errorLine(cmd, err))
	if code == exitUsage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// errorLine renders err on one line, without a leading "NAME: " that
// repeats the command's name.
func errorLine(cmd *cobra.Command, err error) string {
	msg := strings.TrimPrefix(err.Error(), cmd.Name()+": ")
	return strings.ReplaceAll(strings.TrimSpace(msg), "\n", "; ")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, newRootCmd(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
