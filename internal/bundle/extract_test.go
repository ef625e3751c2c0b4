package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testenv"
)

// tarEntry is one entry of an archive built in a test.
type tarEntry struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func buildTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, ModTime: treeTime, Format: tar.FormatGNU}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a parent directory holding the destination and a sentinel
// directory next to it that no extraction may touch.
type sandbox struct {
	parent, dest, outside string
}

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	parent := t.TempDir()
	s := sandbox{parent: parent, dest: filepath.Join(parent, "dest"), outside: filepath.Join(parent, "outside")}
	must(t, os.MkdirAll(s.outside, 0o755))
	must(t, os.WriteFile(filepath.Join(s.outside, "keep"), []byte("keep"), 0o644))
	return s
}

// check asserts that nothing beside dest changed and that no temporary
// directory was left behind.
func (s sandbox) check(t *testing.T) {
	t.Helper()
	for _, n := range testenv.ListDir(t, s.parent) {
		if n != "dest" && n != "outside" && n != "archive.tar" && n != "v1.tgz" {
			t.Errorf("left behind in the parent: %s", n)
		}
	}
	if n := testenv.ListDir(t, s.outside); len(n) != 1 || n[0] != "keep" {
		t.Errorf("outside dir now holds %v", n)
	}
	if data, err := os.ReadFile(filepath.Join(s.outside, "keep")); err != nil || string(data) != "keep" {
		t.Errorf("sentinel changed: %q %v", data, err)
	}
}

func (s sandbox) archive(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(s.parent, "archive.tar")
	must(t, os.WriteFile(p, data, 0o644))
	return p
}

func TestExtractHostile(t *testing.T) {
	const (
		reg, dir, sym, lnk = tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink
	)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"absolute", []tarEntry{{name: "/tmp/murder-abs", typ: reg, body: "x"}}, "absolute"},
		{"dotdot", []tarEntry{{name: "../outside/keep", typ: reg, body: "x"}}, "'..'"},
		{"dotdot inside", []tarEntry{{name: "a/../../outside/keep", typ: reg, body: "x"}}, "'..'"},
		{"symlink absolute", []tarEntry{{name: "etc", typ: sym, link: "/etc"}}, "absolute"},
		{"symlink out", []tarEntry{{name: "a/up", typ: sym, link: "../../outside"}}, "outside the tree"},
		{"write through symlink", []tarEntry{
			{name: "sub/", typ: dir},
			{name: "l", typ: sym, link: "sub"},
			{name: "l/file", typ: reg, body: "x"},
		}, "through symlink"},
		{"symlink then file through it", []tarEntry{
			{name: "out", typ: sym, link: "../outside"},
			{name: "out/keep", typ: reg, body: "x"},
		}, "outside the tree"},
		{"symlink chain", []tarEntry{
			{name: "deep/x/y/", typ: dir},
			{name: "m", typ: sym, link: "deep/x/y/l/../../../../outside"},
			{name: "deep/x/y/l", typ: sym, link: "../../.."},
		}, "outside the tree"},
		{"symlink loop", []tarEntry{
			{name: "a", typ: sym, link: "b"},
			{name: "b", typ: sym, link: "a/x"},
		}, "too many levels"},
		{"hard link out", []tarEntry{{name: "h", typ: lnk, link: "../outside/keep"}}, "outside the tree"},
		{"hard link absolute", []tarEntry{{name: "h", typ: lnk, link: "/etc/passwd"}}, "outside the tree"},
		{"hard link to symlink", []tarEntry{
			{name: "a/b/l", typ: sym, link: "../x"},
			{name: "top", typ: lnk, link: "a/b/l"},
		}, "hard link to a symlink"},
		{"hard link through symlink", []tarEntry{
			{name: "d/", typ: dir},
			{name: "d/f", typ: reg, body: "x"},
			{name: "l", typ: sym, link: "d"},
			{name: "h", typ: lnk, link: "l/f"},
		}, "through symlink"},
		{"char device", []tarEntry{{name: "null", typ: tar.TypeChar}}, "device"},
		{"block device", []tarEntry{{name: "sda", typ: tar.TypeBlock}}, "device"},
		{"fifo", []tarEntry{{name: "p", typ: tar.TypeFifo}}, "FIFO"},
		{"dir over symlink", []tarEntry{
			{name: "l", typ: sym, link: "."},
			{name: "l/", typ: dir},
		}, "directory over a symlink"},
		{"file over dir", []tarEntry{
			{name: "d/", typ: dir},
			{name: "d/f", typ: reg, body: "x"},
			{name: "d", typ: reg, body: "x"},
		}, "replaces a directory"},
		{"unknown type", []tarEntry{{name: "c", typ: tar.TypeCont}}, "unsupported entry type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			arch := s.archive(t, buildTar(t, tc.entries))
			err := Extract(context.Background(), arch, s.dest, ExtractOptions{})
			if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrUnsafeEntry containing %q", err, tc.want)
			}
			if _, err := os.Lstat(s.dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("destination exists after a refused archive: %v", err)
			}
			s.check(t)
		})
	}
}

// TestExtractHostileKeepsDest checks that a refused archive leaves an
// existing destination exactly as it was, also with Replace.
func TestExtractHostileKeepsDest(t *testing.T) {
	s := newSandbox(t)
	must(t, os.MkdirAll(s.dest, 0o755))
	must(t, os.WriteFile(filepath.Join(s.dest, "old"), []byte("old"), 0o644))
	before := snapshot(t, s.dest, nil)
	arch := s.archive(t, buildTar(t, []tarEntry{
		{name: "ok", typ: tar.TypeReg, body: "fine"},
		{name: "evil", typ: tar.TypeSymlink, link: "/etc"},
	}))
	err := Extract(context.Background(), arch, s.dest, ExtractOptions{Replace: true})
	if !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("got %v, want ErrUnsafeEntry", err)
	}
	diffSnapshots(t, before, snapshot(t, s.dest, nil))
	s.check(t)
}

func TestExtractTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.tar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata archives: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := newSandbox(t)
			err := Extract(context.Background(), f, s.dest, ExtractOptions{})
			var want error
			switch base := filepath.Base(f); {
			case strings.HasPrefix(base, "hostile-"):
				want = ErrUnsafeEntry
			case strings.HasPrefix(base, "bomb-"):
				want = ErrTooLarge
			}
			if want != nil {
				if !errors.Is(err, want) {
					t.Errorf("got %v, want %v", err, want)
				}
				if _, err := os.Lstat(s.dest); err == nil {
					t.Error("destination exists after a refused archive")
				}
			} else if err != nil {
				t.Errorf("good archive: %v", err)
			}
			s.check(t)
		})
	}
}

func TestExtractGoodSimple(t *testing.T) {
	s := newSandbox(t)
	must(t, Extract(context.Background(), "testdata/good-simple.tar", s.dest, ExtractOptions{}))
	mt := time.Unix(1700000000, 0).UTC().Format(time.RFC3339)
	want := map[string]string{
		"dir":          "dir -rwxr-xr-x " + mt,
		"dir/file.txt": "file -rw-r--r-- " + mt + " hello\n",
		"dir/run.sh":   "file -rwxr-xr-x " + mt + " #!/bin/sh\n", // setuid dropped
		"dir/link":     "link file.txt",
		"dir/hard":     "file -rw-r--r-- " + mt + " hello\n",
		"top":          "link dir/link",
	}
	diffSnapshots(t, want, snapshot(t, s.dest, nil))
	a, _ := os.Stat(filepath.Join(s.dest, "dir/file.txt"))
	b, _ := os.Stat(filepath.Join(s.dest, "dir/hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link is a copy")
	}
}

func TestExtractModes(t *testing.T) {
	s := newSandbox(t)
	arch := s.archive(t, buildTar(t, []tarEntry{
		{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "ro/f", typ: tar.TypeReg, body: "x", mode: 0o6755},
		{name: "sticky/", typ: tar.TypeDir, mode: 0o1777},
		{name: "./", typ: tar.TypeDir, mode: 0o700},
		{name: "dup", typ: tar.TypeReg, body: "first"},
		{name: "dup", typ: tar.TypeReg, body: "second"},
		{name: "relink", typ: tar.TypeSymlink, link: "dup"},
		{name: "relink", typ: tar.TypeReg, body: "now a file"},
	}))
	must(t, Extract(context.Background(), arch, s.dest, ExtractOptions{}))
	for name, want := range map[string]fs.FileMode{"ro": fs.ModeDir | 0o555, "ro/f": 0o755, "sticky": fs.ModeDir | 0o777, "relink": 0o644} {
		fi, err := os.Lstat(filepath.Join(s.dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(s.dest, "dup")); string(data) != "second" {
		t.Errorf("dup holds %q, want the later entry", data)
	}
	// Let t.TempDir clean up the read-only directory.
	must(t, os.Chmod(filepath.Join(s.dest, "ro"), 0o755))
}

func TestPublish(t *testing.T) {
	fillOK := func(dir string) error { return os.WriteFile(filepath.Join(dir, "new"), []byte("new"), 0o644) }
	fillErr := func(dir string) error {
		_ = fillOK(dir)
		return errors.New("download failed")
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dest string)
		replace bool
		fill    func(string) error
		wantErr string
		want    map[string]string // nil: dest as before
	}{
		{"new", nil, false, fillOK, "", map[string]string{"new": "new"}},
		{"empty dir", func(t *testing.T, d string) { must(t, os.MkdirAll(d, 0o755)) }, false, fillOK, "", map[string]string{"new": "new"}},
		{"not empty", withOld, false, fillOK, "not empty", nil},
		{"not empty replace", withOld, true, fillOK, "", map[string]string{"new": "new"}},
		{"a file", func(t *testing.T, d string) { must(t, os.WriteFile(d, []byte("f"), 0o644)) }, false, fillOK, "not empty", nil},
		{"a file replace", func(t *testing.T, d string) { must(t, os.WriteFile(d, []byte("f"), 0o644)) }, true, fillOK, "", map[string]string{"new": "new"}},
		{"fill fails", withOld, true, fillErr, "download failed", nil},
		{"fill fails new", nil, false, fillErr, "download failed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			s.dest = filepath.Join(s.parent, "dest")
			if tc.setup != nil {
				tc.setup(t, s.dest)
			}
			before, beforeErr := os.ReadFile(s.dest)
			var beforeTree map[string]string
			if fi, err := os.Stat(s.dest); err == nil && fi.IsDir() {
				beforeTree = snapshot(t, s.dest, nil)
			}
			err := Publish(s.dest, tc.replace, tc.fill)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				if tc.wantErr == "not empty" && !errors.Is(err, ErrNotEmpty) {
					t.Errorf("got %v, want ErrNotEmpty", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want != nil:
				got := map[string]string{}
				for _, n := range testenv.ListDir(t, s.dest) {
					data, _ := os.ReadFile(filepath.Join(s.dest, n))
					got[n] = string(data)
				}
				if len(got) != len(tc.want) || got["new"] != tc.want["new"] {
					t.Errorf("dest holds %v, want %v", got, tc.want)
				}
				if fi, _ := os.Stat(s.dest); fi.Mode().Perm() != 0o755 {
					t.Errorf("dest mode %v, want 0755", fi.Mode().Perm())
				}
			case beforeTree != nil:
				diffSnapshots(t, beforeTree, snapshot(t, s.dest, nil))
			default:
				after, afterErr := os.ReadFile(s.dest)
				if !bytes.Equal(after, before) || (afterErr == nil) != (beforeErr == nil) {
					t.Errorf("dest changed: %q %v, was %q %v", after, afterErr, before, beforeErr)
				}
			}
			s.check(t)
		})
	}
}

func withOld(t *testing.T, dest string) {
	must(t, os.MkdirAll(filepath.Join(dest, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dest, "sub", "old"), []byte("old"), 0o644))
}

func TestExtractCorrupt(t *testing.T) {
	src := makeTree(t)
	for _, f := range []Format{TGZ, TarZst} {
		t.Run(f.String(), func(t *testing.T) {
			res := create(t, CreateOptions{FilesPath: src, Format: f})
			data, err := os.ReadFile(res.ArtifactPath)
			must(t, err)
			for name, bad := range map[string][]byte{
				"truncated": data[:len(data)-9],
				"flipped":   flip(data, len(data)/2),
			} {
				t.Run(name, func(t *testing.T) {
					s := newSandbox(t)
					withOld(t, s.dest)
					p := filepath.Join(s.parent, "v1"+f.Ext())
					must(t, os.WriteFile(p, bad, 0o644))
					if err := Extract(context.Background(), p, s.dest, ExtractOptions{Replace: true}); err == nil {
						t.Fatal("a corrupt archive extracted without error")
					}
					if got := testenv.ListDir(t, filepath.Join(s.dest, "sub")); len(got) != 1 || got[0] != "old" {
						t.Errorf("dest changed: %v", got)
					}
					must(t, os.Remove(p))
					s.check(t)
				})
			}
		})
	}
}

func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 0xff
	return out
}

func TestExtractUnknownName(t *testing.T) {
	s := newSandbox(t)
	p := filepath.Join(s.parent, "archive.zip")
	must(t, os.WriteFile(p, nil, 0o644))
	if err := Extract(context.Background(), p, s.dest, ExtractOptions{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("got %v, want ErrUnknownFormat", err)
	}
}

func TestExtractCancelled(t *testing.T) {
	s := newSandbox(t)
	arch := s.archive(t, buildTar(t, []tarEntry{{name: "f", typ: tar.TypeReg, body: "x"}}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Extract(ctx, arch, s.dest, ExtractOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(s.dest); err == nil {
		t.Error("destination exists after cancel")
	}
	s.check(t)
}
