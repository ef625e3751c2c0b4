package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md from the commands' help")

// cliReference renders every command's --help into one Markdown page.
func cliReference() string {
	var b strings.Builder
	b.WriteString("# murder command reference\n\n")
	b.WriteString("Generated from `murder COMMAND --help` by `go test ./cmd/murder -run TestCLIReference -update`; a test fails when it is out of date.\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "completion" || c.Name() == "help" {
			return
		}
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.InitDefaultHelpFlag()
		if err := c.Help(); err != nil {
			panic(err)
		}
		b.WriteString("\n## " + c.CommandPath() + "\n\n```\n" + strings.TrimRight(out.String(), "\n") + "\n```\n")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	return b.String()
}

func TestCLIReference(t *testing.T) {
	const path = "../../docs/cli.md"
	got := cliReference()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/murder -run TestCLIReference -update)", err)
	}
	if string(want) != got {
		t.Fatalf("docs/cli.md is out of date: run go test ./cmd/murder -run TestCLIReference -update")
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() != "completion" && c.Name() != "help" {
			if c.Short == "" {
				t.Errorf("%s has no short description", c.CommandPath())
			}
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Usage == "" {
					t.Errorf("%s --%s has no help text", c.CommandPath(), f.Name)
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}
