package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are stamped at release time with
// -ldflags "-X main.version=v0.3.0 -X main.commit=SHA" (scripts/release.sh).
// When they are not, buildVersion reads what the Go toolchain recorded:
// the module version of `go install ...@v0.3.0`, and the VCS revision of a
// build in a git checkout.
var (
	version = ""
	commit  = ""
)

// buildVersion returns murder's release version and commit, "dev" and
// "unknown" when neither was stamped nor recorded.
func buildVersion() (ver, rev string) {
	ver, rev = version, commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return orDefault(ver, "dev"), orDefault(rev, "unknown")
	}
	if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	if rev == "" {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	return orDefault(ver, "dev"), orDefault(rev, "unknown")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// versionLine is what `murder version` and `murder --version` print.
func versionLine() string {
	ver, rev := buildVersion()
	return fmt.Sprintf("murder %s (commit %s, %s %s/%s)\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print murder's version",
		Long: `version prints murder's release version (the git tag it was built from,
e.g. v0.3.0, or "dev"), the commit, and the Go version and platform it was
built for. murder --version prints the same line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}
