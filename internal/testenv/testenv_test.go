package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// recorder stands in for a test: it notes how a helper ended it and, like
// testing.T, stops the calling goroutine at Skip and Fatal.
type recorder struct {
	testing.TB
	skipped, fatal bool
	errors         []string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = true; runtime.Goexit() }

func (r *recorder) Fatal(args ...any) { r.fatal = true; runtime.Goexit() }

func (r *recorder) Fatalf(format string, args ...any) { r.fatal = true; runtime.Goexit() }

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// call runs f with a recorder in a goroutine of its own, as testing runs a
// test, and returns the recorder when f has returned or was stopped.
func call(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestRequire(t *testing.T) {
	isRoot := os.Geteuid() == 0
	tests := []struct {
		tool    string
		ci      string
		present bool
	}{
		{tool: "sh", present: true},
		{tool: "sh", ci: "1", present: true},
		{tool: "murder-testenv-no-such-tool", present: false},
		{tool: "murder-testenv-no-such-tool", ci: "1", present: false},
		{tool: "/nonexistent/murder-testenv", ci: "true", present: false},
		{tool: "root", present: isRoot},
		{tool: "root", ci: "1", present: isRoot},
	}
	for _, tt := range tests {
		t.Run(tt.tool+" CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := call(t, func(tb testing.TB) { Require(tb, tt.tool) })
			wantSkip := !tt.present && tt.ci == ""
			wantFatal := !tt.present && tt.ci != ""
			if r.skipped != wantSkip || r.fatal != wantFatal {
				t.Errorf("skipped %v, fatal %v; want skipped %v, fatal %v", r.skipped, r.fatal, wantSkip, wantFatal)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	bin, err := BuildMurder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	if _, err := Build(t.TempDir(), MurderPkg+"/no-such-package"); err == nil {
		t.Error("building a package that does not exist succeeded")
	}
}

func TestFreePort(t *testing.T) {
	port := FreePort(t, "127.0.0.1")
	if port <= 0 || port > 65535 {
		t.Fatalf("port %d out of range", port)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d is not free: %v", port, err)
	}
	ln.Close()
}

// writeFiles writes a tree: name -> content, "->target" for a symlink,
// "/" suffix on the name for a directory.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if len(body) > 2 && body[:2] == "->" {
			err = os.Symlink(body[2:], p)
		} else {
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestSameTree(t *testing.T) {
	base := map[string]string{
		"README":     "murder\n",
		"bin/run":    "#!/bin/sh\n",
		"current":    "->bin/run",
		"empty/":     "",
		".git/HEAD":  "ref: refs/heads/main\n",
		".gitignore": "*.o\n",
	}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		c      Compare
		errors int
	}{
		{name: "same", c: Mode},
		{name: "content", errors: 1, change: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"README": "murder!\n"})
		}},
		{name: "missing file", errors: 1, change: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "bin/run"))
		}},
		{name: "extra file", errors: 1, change: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"extra": ""})
		}},
		{name: "link target", errors: 1, change: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "current"))
			writeFiles(t, dir, map[string]string{"current": "->README"})
		}},
		{name: "file for link", errors: 1, change: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "current"))
			writeFiles(t, dir, map[string]string{"current": "#!/bin/sh\n"})
		}},
		{name: "permission with Mode", c: Mode, errors: 1, change: func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "bin/run"), 0o755)
		}},
		{name: "permission with Content", c: Content, change: func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "bin/run"), 0o755)
		}},
		{name: ".git entries ignored", c: Mode, change: func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, ".git"))
			os.Remove(filepath.Join(dir, ".gitignore"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, got := t.TempDir(), t.TempDir()
			writeFiles(t, want, base)
			writeFiles(t, got, base)
			if tt.change != nil {
				tt.change(t, got)
			}
			r := call(t, func(tb testing.TB) { SameTree(tb, want, got, tt.c) })
			if r.fatal || len(r.errors) != tt.errors {
				t.Errorf("got %d errors %q (fatal %v), want %d", len(r.errors), r.errors, r.fatal, tt.errors)
			}
		})
	}
}

func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "murder", "b": "murder", "c": "murdeR"})
	tests := []struct {
		other string
		fatal bool
	}{
		{"a", false},
		{"b", false},
		{"c", true},
		{"missing", true},
	}
	for _, tt := range tests {
		r := call(t, func(tb testing.TB) { SameFile(tb, filepath.Join(dir, "a"), filepath.Join(dir, tt.other)) })
		if r.fatal != tt.fatal {
			t.Errorf("SameFile(a, %s): fatal %v, want %v", tt.other, r.fatal, tt.fatal)
		}
	}
}

func TestPrimeMemory(t *testing.T) {
	m, err := PrimeMemory(1<<20 + 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1<<20+1 {
		t.Fatalf("primed %d bytes, want %d", len(m), 1<<20+1)
	}
	for i := 0; i < len(m); i += os.Getpagesize() {
		if m[i] != 1 {
			t.Fatalf("page at %d was not written", i)
		}
	}
	m.Release()
	if m != nil {
		t.Fatal("Release left the memory set")
	}
	m.Release() // a second Release does nothing
}
