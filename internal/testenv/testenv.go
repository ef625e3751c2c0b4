// Package testenv holds what murder's tests and bench programs share:
// checking for the external tools a test needs (a skip when run by hand, a
// failure in CI), building the murder binary, picking a free port and
// comparing a placed tree with its source. It is modelled on the standard
// library's test helper packages; only tests and the programs under bench
// import it.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/cidr"
)

// PythonLT is the interpreter that has Debian's python3-libtorrent.
const PythonLT = "/usr/bin/python3"

// MurderPkg is the import path of the murder command.
const MurderPkg = "github.com/murder-deploy/murder/cmd/murder"

// Missing ends t because something it needs is missing: t.Skip when the
// tests run by hand, t.Fatal when the environment variable CI is set,
// since CI installs everything and a skip there would hide a failure.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("required in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Require ends t through Missing unless tool is available. tool is a
// program looked up in PATH (or a path to one), or one of the special
// names "libtorrent" (PythonLT can import libtorrent) and "root" (the
// effective user id is 0).
func Require(t testing.TB, tool string) {
	t.Helper()
	var err error
	switch tool {
	case "libtorrent":
		err = exec.Command(PythonLT, "-c", "import libtorrent").Run()
	case "root":
		if os.Geteuid() != 0 {
			err = fmt.Errorf("running as uid %d", os.Geteuid())
		}
	default:
		_, err = exec.LookPath(tool)
	}
	if err != nil {
		Missing(t, "%s not available: %v", tool, err)
	}
}

// BuildMurder builds the murder command into dir and returns the binary's
// path.
func BuildMurder(dir string) (string, error) {
	return Build(dir, MurderPkg)
}

// Build builds the command pkg as dir/murder, with the compiler's output on
// stderr, and returns the binary's path. The binary is static
// (CGO_ENABLED=0), so it runs in every test-bed host and wherever a test
// copies it.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, "murder")
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testenv: go build %s: %w", pkg, err)
	}
	return bin, nil
}

// FreePort returns a TCP port that was free on ip a moment ago, for
// programs that cannot report the port they picked themselves.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// SigningKey makes an ed25519 key at dir/name with ssh-keygen (with a
// passphrase when not "") and returns its path and its public key as
// "TYPE BASE64", the middle of an allowed_signers line.
func SigningKey(t testing.TB, dir, name, passphrase string) (key, pub string) {
	t.Helper()
	Require(t, "ssh-keygen")
	key = filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		t.Fatalf("%s.pub: %q is no public key", key, b)
	}
	return key, f[0] + " " + f[1]
}

// CIDR parses a list of addresses and prefixes, or ends t.
func CIDR(t testing.TB, entries ...string) cidr.List {
	t.Helper()
	l, err := cidr.Parse(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
