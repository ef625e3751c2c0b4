// Package packaging tests murder's release: scripts/release.sh, the
// tarball, the Debian package and its systemd units (nfpm.yaml and the
// unit files in this directory).
package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/testenv"
)

// version is what the test releases: a version no tag will ever carry, so
// release.sh builds HEAD.
const version = "v0.0.0-test.1"

// run runs name with args and returns its standard output, failing t with
// its standard error when it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestRelease runs scripts/release.sh for linux/amd64 only (arm64 is the
// same build with another GOARCH; one keeps CI's cost down), then checks
// the tarball, SHA256SUMS and the .deb: its files, a clean install and
// purge in a throwaway root, and systemd-analyze verify of its units.
// release.sh builds the committed HEAD, so commit before running this.
func TestRelease(t *testing.T) {
	for _, tool := range []string{"git", "go", "dpkg-deb", "dpkg", "sha256sum"} {
		testenv.Require(t, tool)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Run(); err != nil {
		testenv.Missing(t, "not a git checkout: %v", err)
	}
	dist := t.TempDir()
	run(t, repo, []string{"DIST=" + dist, "RELEASE_ARCHES=amd64"}, "scripts/release.sh", version)
	num := strings.TrimPrefix(version, "v")
	tgz := "murder_" + num + "_linux_amd64.tar.gz"
	deb := "murder_" + num + "_amd64.deb"

	t.Run("checksums", func(t *testing.T) {
		out := run(t, dist, nil, "sha256sum", "-c", "SHA256SUMS")
		for _, f := range []string{tgz, deb} {
			if !strings.Contains(out, f+": OK") {
				t.Errorf("sha256sum -c SHA256SUMS says:\n%s\nwant %s: OK", out, f)
			}
		}
	})

	t.Run("tarball", func(t *testing.T) {
		files := untar(t, filepath.Join(dist, tgz))
		top := "murder_" + num + "_linux_amd64/"
		for _, want := range []string{"murder", "LICENSE", "README.md", "docs/cli.md"} {
			if _, ok := files[top+want]; !ok {
				t.Errorf("%s lacks %s%s; it has %v", tgz, top, want, keys(files))
			}
		}
		bin := filepath.Join(t.TempDir(), "murder")
		if err := os.WriteFile(bin, files[top+"murder"], 0o755); err != nil {
			t.Fatal(err)
		}
		checkStatic(t, bin)
		out := run(t, "", nil, bin, "--version")
		if !strings.HasPrefix(out, "murder "+version+" (commit ") || strings.Contains(out, "commit unknown") {
			t.Errorf("murder --version says %q, want murder %s and its commit", out, version)
		}
		if !bytes.Contains(files[top+"LICENSE"], []byte("Apache License")) {
			t.Errorf("LICENSE is not the Apache License")
		}
	})

	t.Run("deb", func(t *testing.T) {
		pkg := filepath.Join(dist, deb)
		info := run(t, "", nil, "dpkg-deb", "--field", pkg, "Package", "Version", "Architecture")
		if want := "Package: murder\nVersion: " + num + "\nArchitecture: amd64\n"; info != want {
			t.Errorf("dpkg-deb --field says\n%s\nwant\n%s", info, want)
		}
		listing := run(t, "", nil, "dpkg-deb", "--contents", pkg)
		units := []string{"murder-tracker.service", "murder-seed@.service"}
		wantFiles := []string{"./usr/bin/murder", "./etc/default/murder-tracker", "./usr/share/doc/murder/copyright", "./usr/share/doc/murder/README.md"}
		for _, u := range units {
			wantFiles = append(wantFiles, "./usr/lib/systemd/system/"+u)
		}
		for _, f := range wantFiles {
			if !strings.Contains(listing, " "+f+"\n") {
				t.Errorf("dpkg-deb --contents lacks %s:\n%s", f, listing)
			}
		}

		// A throwaway root with an empty dpkg database. The package has no
		// maintainer scripts, so dpkg needs nothing else in it.
		root := t.TempDir()
		for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dpkg := func(args ...string) string {
			return run(t, "", nil, "dpkg", append([]string{"--root=" + root, "--force-not-root", "--log=/dev/null"}, args...)...)
		}
		dpkg("--install", pkg)
		if out := dpkg("--status", "murder"); !strings.Contains(out, "Status: install ok installed") {
			t.Errorf("after install, dpkg --status murder says:\n%s", out)
		}
		out := run(t, "", nil, filepath.Join(root, "usr/bin/murder"), "version")
		if !strings.HasPrefix(out, "murder "+version+" ") {
			t.Errorf("installed murder version says %q, want murder %s", out, version)
		}
		t.Run("systemd-analyze verify", func(t *testing.T) {
			verifyUnits(t, root, units)
		})
		dpkg("--purge", "murder")
		var left []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, p)
			if err == nil && !d.IsDir() && !strings.HasPrefix(rel, "var/lib/dpkg/") {
				left = append(left, rel)
			}
			return err
		})
		if len(left) > 0 {
			t.Errorf("after dpkg --purge murder these remain: %v", left)
		}
	})
}

// verifyUnits runs systemd-analyze verify on units installed in root. It
// copies the machine's own targets, slices and sockets into root first,
// since the units refer to them (network-online.target, sysinit.target).
// Any message at all, even a warning such as an unknown key, fails t.
func verifyUnits(t *testing.T, root string, units []string) {
	testenv.Require(t, "systemd-analyze")
	const sys = "/usr/lib/systemd/system"
	ents, err := os.ReadDir(sys)
	if err != nil {
		testenv.Missing(t, "no systemd units on this machine: %v", err)
	}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.Type().IsRegular() && (ext == ".target" || ext == ".slice" || ext == ".socket") {
			data, err := os.ReadFile(filepath.Join(sys, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(root, sys, e.Name())
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(dst) })
		}
	}
	args := []string{"verify", "--root=" + root}
	for _, u := range units {
		args = append(args, strings.Replace(u, "@.", "@demo.tgz.", 1))
	}
	cmd := exec.Command("systemd-analyze", args...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// checkStatic fails t unless bin is an ELF executable without a program
// interpreter, that is statically linked.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("%s is for %v, want EM_X86_64", bin, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: it is not statically linked", bin)
		}
	}
}

// untar returns the regular files of a .tar.gz by name.
func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
