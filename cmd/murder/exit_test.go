package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/murder-deploy/murder/internal/testenv"
)

// runMurder runs the murder binary bin with args and returns its exit code,
// stdout and stderr.
func runMurder(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("murder %q did not exit within 60s", args)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("murder %q: %v\nstderr:\n%s", args, err, stderr.String())
	return 0, "", ""
}

// TestCLIExitCodes runs the murder binary with bad command lines across all
// commands and checks the exit code (2 for usage errors, 1 for failures at
// run time) and the shape of the report: one line on stderr naming the
// command, plus a hint after a usage error, and nothing on stdout.
func TestCLIExitCodes(t *testing.T) {
	bin, err := testenv.BuildMurder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "app"), []byte("binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "dest")
	missing := filepath.Join(t.TempDir(), "missing")
	create := func(extra ...string) []string {
		return append([]string{"create", "--files-path", files, "--tracker", "127.0.0.1:8998", "--temp-path", t.TempDir()}, extra...)
	}
	paths := []string{"--files-path", files, "--destination-path", dest}

	tests := []struct {
		name string
		args []string
		code int
		path string // the command named at the start of stderr
		want string // in the first line of stderr
	}{
		{"no command", nil, 2, "murder", "name a command: "},
		{"unknown command", []string{"nosuch"}, 2, "murder", `unknown command "nosuch"`},
		{"misspelt command", []string{"pee", "--torrent", "x"}, 2, "murder", `did you mean "peer"?`},
		{"unknown root flag", []string{"--bogus"}, 2, "murder", "name a command"},
		{"help unknown topic", []string{"help", "nosuch"}, 2, "murder help", `unknown help topic "nosuch"`},
		{"version extra arg", []string{"version", "extra-arg"}, 2, "murder version", `unexpected argument "extra-arg"`},
		{"version unknown flag", []string{"version", "--bogus"}, 2, "murder version", "unknown flag: --bogus"},
		{"completion extra arg", []string{"completion", "bash", "x"}, 2, "murder completion bash", `unexpected argument "x"`},

		{"peer no flags", []string{"peer"}, 2, "murder peer", `required flag(s) "destination-path", "torrent" not set`},
		{"peer no destination", []string{"peer", "--torrent", "a.torrent"}, 2, "murder peer", `"destination-path" not set`},
		{"peer bad duration", []string{"peer", "--torrent", "a", "--destination-path", dest, "--seed-time", "soon"}, 2, "murder peer", `invalid argument "soon"`},
		{"peer flag needs value", []string{"peer", "--torrent"}, 2, "murder peer", "flag needs an argument: --torrent"},
		{"peer extra arg", []string{"peer", "--torrent", "a", "--destination-path", dest, "x"}, 2, "murder peer", `unexpected argument "x"`},
		{"peer missing torrent", []string{"peer", "--torrent", missing, "--destination-path", dest, "--seed-time", "0"}, 1, "murder peer", "no such file"},
		{"peer bad rate", []string{"peer", "--torrent", "a", "--destination-path", dest, "--max-download-rate", "fast"}, 2, "murder peer", "--max-download-rate"},
		{"peer bad progress", []string{"peer", "--torrent", "a", "--destination-path", dest, "--progress", "loud"}, 2, "murder peer", "loud"},
		{"peer bad log level", []string{"peer", "--torrent", "a", "--destination-path", dest, "--log-level", "chatty"}, 2, "murder peer", "--log-level"},
		{"seed bad rate", []string{"seed", "--torrent", "a", "--max-upload-rate", "fast"}, 2, "murder seed", "--max-upload-rate"},
		{"seed bad log level", []string{"seed", "--torrent", "a", "--log-level", "chatty"}, 2, "murder seed", "--log-level"},
		{"seed no torrent", []string{"seed"}, 2, "murder seed", `required flag(s) "torrent" not set`},
		{"seed unknown flag", []string{"seed", "--bogus"}, 2, "murder seed", "unknown flag: --bogus"},
		{"seed unknown shorthand", []string{"seed", "-x"}, 2, "murder seed", "unknown shorthand flag: 'x'"},
		{"seed missing torrent", []string{"seed", "--torrent", missing}, 1, "murder seed", "no such file"},
		{"tracker bad interval", []string{"tracker", "--interval", "abc"}, 2, "murder tracker", `invalid argument "abc" for "--interval"`},
		{"tracker short interval", []string{"tracker", "--interval", "10ms"}, 2, "murder tracker", "--interval 10ms is too short"},
		{"tracker bad numwant", []string{"tracker", "--numwant-max", "many"}, 2, "murder tracker", `invalid argument "many"`},
		{"tracker extra arg", []string{"tracker", "extra"}, 2, "murder tracker", `unexpected argument "extra"`},

		{"create empty tag", create("--tag", ""), 2, "murder create", "tag is empty"},
		{"create no tag", create(), 2, "murder create", "--tag is required"},
		{"create bad tag", create("--tag", "a/b"), 2, "murder create", "'/'"},
		{"create bad piece size", create("--tag", "v1", "--piece-size", "lots"), 2, "murder create", "--piece-size"},
		{"create bad format", create("--tag", "v1", "--format", "zip"), 2, "murder create", "--format"},
		{"create extra arg", create("--tag", "v1", "x"), 2, "murder create", `unexpected argument "x"`},
		{"create missing files path", []string{"create", "--tag", "v1", "--files-path", missing, "--tracker", "h:1", "--temp-path", t.TempDir()}, 1, "murder create", "no such file"},
		{"show no file", []string{"show"}, 2, "murder show", "want one .torrent FILE, got 0"},
		{"show two files", []string{"show", "a", "b"}, 2, "murder show", "want one .torrent FILE, got 2"},
		{"show unknown flag", []string{"show", "--bogus", "a"}, 2, "murder show", "unknown flag: --bogus"},
		{"show missing file", []string{"show", missing}, 1, "murder show", "no such file"},

		{"fleet no task", []string{"fleet"}, 2, "murder fleet", "name a task: clean-temp-files, "},
		{"fleet unknown task", []string{"fleet", "nosuch"}, 2, "murder fleet", `unknown task "nosuch"`},
		{"fleet misspelt task", []string{"fleet", "stop-tracer"}, 2, "murder fleet", `did you mean "stop-tracker"?`},
		{"fleet peer no flags", []string{"fleet", "peer"}, 2, "murder fleet peer", `required flag(s) "destination-path", "tag" not set`},
		{"fleet create-torrent no files path", []string{"fleet", "create-torrent", "--tag", "v1"}, 2, "murder fleet create-torrent", `"files-path" not set`},
		{"fleet bad tag", []string{"fleet", "start-seeding", "--tag", "a/b"}, 2, "murder fleet start-seeding", `bad tag "a/b"`},
		{"fleet empty tag", []string{"fleet", "stop-seeding", "--tag", ""}, 2, "murder fleet stop-seeding", "--tag is required"},
		{"fleet peer relative destination", []string{"fleet", "-c", missing, "peer", "--tag", "v1", "--destination-path", "srv/app"}, 2, "murder fleet peer", `--destination-path must be an absolute path on the peers, got "srv/app"`},
		{"fleet task extra arg", []string{"fleet", "stop-tracker", "x"}, 2, "murder fleet stop-tracker", `unexpected argument "x"`},
		{"fleet task unknown flag", []string{"fleet", "stop-tracker", "--tag", "v1"}, 2, "murder fleet stop-tracker", "unknown flag: --tag"},
		{"fleet missing inventory", []string{"fleet", "-c", missing, "stop-tracker"}, 1, "murder fleet stop-tracker", "no such file"},

		{"deploy no flags", []string{"deploy"}, 2, "murder deploy", `required flag(s) "destination-path", "files-path" not set`},
		{"deploy bad local", []string{"deploy", "--local", "x"}, 2, "murder deploy", `invalid argument "x" for "--local"`},
		{"deploy zero local", append([]string{"deploy", "--local", "0"}, paths...), 2, "murder deploy", "--local 0: want at least 1 peer"},
		{"deploy local and config", append([]string{"deploy", "--local", "2", "-c", "murder.toml"}, paths...), 2, "murder deploy", "drop -c"},
		{"deploy local bad rate", append([]string{"deploy", "--local", "1", "--max-upload-rate", "fast"}, paths...), 2, "murder deploy", "--max-upload-rate"},
		{"deploy local bad tag", append([]string{"deploy", "--local", "1", "--tag", "a b"}, paths...), 2, "murder deploy", `bad tag "a b"`},
		{"deploy local-only flag", append([]string{"deploy", "--tag", "v1", "--timeout", "1m"}, paths...), 2, "murder deploy", "--timeout only apply to --local"},
		{"deploy no tag", append([]string{"deploy"}, paths...), 2, "murder deploy", "--tag is required with -c"},
		{"deploy relative destination", []string{"deploy", "-c", missing, "--tag", "v1", "--files-path", "/srv/build", "--destination-path", "app"}, 2, "murder deploy", "--destination-path must be an absolute path"},
		{"deploy missing inventory", append([]string{"deploy", "-c", missing, "--tag", "v1"}, paths...), 1, "murder deploy", "no such file"},
		{"deploy local missing files", []string{"deploy", "--local", "1", "--files-path", missing, "--destination-path", dest}, 1, "murder deploy", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMurder(t, bin, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout is not empty:\n%s", stdout)
			}
			for _, bad := range []string{"goroutine", "panic", "Usage:", "Flags:"} {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr contains %q:\n%s", bad, stderr)
				}
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			wantLines := 1
			if tt.code == 2 {
				wantLines = 2
			}
			if len(lines) != wantLines || !strings.HasSuffix(stderr, "\n") {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), wantLines, stderr)
			}
			if !strings.HasPrefix(lines[0], tt.path+": ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr line %q, want %q then %q", lines[0], tt.path+": ", tt.want)
			}
			if tt.code == 2 {
				if hint := "Run '" + tt.path + " --help' for usage."; lines[1] != hint {
					t.Errorf("second stderr line %q, want %q", lines[1], hint)
				}
			}
		})
	}

	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runMurder(t, bin, "version")
		want := regexp.MustCompile(`^murder (dev|v[0-9][^ ]*) \(commit [^ ,]+, go[^ ]+ [a-z0-9]+/[a-z0-9]+\)\n$`)
		if code != 0 || !want.MatchString(stdout) || stderr != "" {
			t.Errorf("got code %d, stdout %q, stderr %q; want 0, a line matching %s and nothing", code, stdout, stderr, want)
		}
		code, flag, stderr := runMurder(t, bin, "--version")
		if code != 0 || flag != stdout || stderr != "" {
			t.Errorf("murder --version: got code %d, stdout %q, stderr %q; want 0, %q and nothing", code, flag, stderr, stdout)
		}
	})
	t.Run("help command", func(t *testing.T) {
		_, want, _ := runMurder(t, bin, "fleet", "peer", "--help")
		code, stdout, stderr := runMurder(t, bin, "help", "fleet", "peer")
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("murder help fleet peer: code %d, stderr %q, stdout:\n%s\nwant 0, nothing and:\n%s", code, stderr, stdout, want)
		}
	})

	// --help of every command exits 0 and explains every flag the command
	// takes, its own and inherited.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		t.Run("help "+strings.Join(path, " "), func(t *testing.T) {
			code, stdout, stderr := runMurder(t, bin, append(path, "--help")...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit code %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if !strings.Contains(stdout, "Usage:\n  "+c.CommandPath()) {
				t.Errorf("help lacks the usage of %s:\n%s", c.CommandPath(), stdout)
			}
			c.InitDefaultHelpFlag()
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden {
					if strings.Contains(stdout, "--"+f.Name) {
						t.Errorf("help shows the hidden flag --%s", f.Name)
					}
					return
				}
				name := "--" + f.Name
				if f.Shorthand != "" {
					name = "-" + f.Shorthand + ", --" + f.Name
				}
				if !strings.Contains(stdout, name) || !strings.Contains(stdout, f.Usage) {
					t.Errorf("help lacks %s or its text %q", name, f.Usage)
				}
			})
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	walk(root)
}

// TestRootUsage checks that the root's usage, though the root runs to
// report a missing command, offers only "murder [command]".
func TestRootUsage(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	if err := root.Help(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "Usage:\n  murder [command]\n") {
		t.Errorf("root help lacks a usage of just murder [command]:\n%s", got)
	}
}

// TestUsageErrorsInProcess checks the classification without the binary:
// every error cobra finds before a command runs carries exit code 2, and
// runtime failures do not.
func TestUsageErrorsInProcess(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"seed"}, 2},
		{[]string{"seed", "--torrent", filepath.Join(t.TempDir(), "missing")}, 1},
		{[]string{"fleet", "peer", "--tag", "v1"}, 2},
		{[]string{"show", "--json"}, 2},
		{[]string{"tracker", "--listen"}, 2},
		{[]string{"nosuch"}, 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			root := newRootCmd()
			root.SetOut(&bytes.Buffer{})
			if code := run(t.Context(), root, tt.args, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
		})
	}
}
