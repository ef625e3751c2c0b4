// Package fleettest starts real OpenSSH servers for fleet tests: keys are
// generated per test, sshd listens on a loopback address and a free port,
// and everything is removed when the test ends.
package fleettest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/murder-deploy/murder/internal/testenv"
)

// SSHDPath is where Debian's openssh-server installs sshd.
const SSHDPath = "/usr/sbin/sshd"

// NeedSSHD skips the test when sshd (Debian's openssh-server) or root is
// missing, except under CI, where it fails (see testenv.Missing). sshd
// tests log in as the current user and need root to start sshd with its
// privilege separation directory.
func NeedSSHD(t testing.TB) {
	t.Helper()
	testenv.Require(t, SSHDPath)
	testenv.Require(t, "root")
}

// Key is a generated ed25519 key pair.
type Key struct {
	Signer  ssh.Signer
	PEM     []byte // OpenSSH private key file content
	AuthKey []byte // authorized_keys line
}

// NewKey generates an ed25519 key.
func NewKey(t testing.TB) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Signer: s, PEM: pem.EncodeToMemory(block), AuthKey: ssh.MarshalAuthorizedKey(s.PublicKey())}
}

// WriteKey writes the private key to a file in dir and returns its path.
func (k Key) WriteKey(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, k.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SSHD is a running sshd.
type SSHD struct {
	Addr    string // host:port it listens on
	HostKey Key
	Dir     string
	cmd     *exec.Cmd
}

// KnownHostsLine returns the known_hosts line for this server.
func (s *SSHD) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey.Signer.PublicKey())
}

// Stop stops the server; it is safe to call twice.
func (s *SSHD) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Options tune StartSSHD.
type Options struct {
	// Command, when set, starts sshd through it (for example a test bed's
	// "run in host" wrapper); it receives sshd's argv and returns the
	// command to run.
	Command func(argv []string) *exec.Cmd
	Env     []string // extra environment for sshd sessions (SetEnv)
	Config  []string // extra sshd_config lines, e.g. "AllowTcpForwarding no"
}

// StartSSHD starts sshd on ip (a loopback or test-bed address) and a free
// port, accepting the given client keys for every user, and stops it when
// the test ends. It waits until the port accepts connections.
func StartSSHD(t testing.TB, ip string, port int, opt Options, clients ...Key) *SSHD {
	t.Helper()
	NeedSSHD(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd privilege separation directory: %v", err)
	}
	dir := t.TempDir()
	host := NewKey(t)
	hostKeyPath := host.WriteKey(t, dir, "host_ed25519")
	var auth bytes.Buffer
	for _, c := range clients {
		auth.Write(c.AuthKey)
	}
	authPath := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authPath, auth.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if port == 0 {
		port = testenv.FreePort(t, ip)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	conf := fmt.Sprintf(`ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
MaxStartups 100:30:200
MaxSessions 50
`, addr, hostKeyPath, authPath)
	for _, e := range opt.Env {
		conf += "SetEnv " + e + "\n"
	}
	// sshd takes the first value of a keyword, so the caller's lines go
	// before the defaults below.
	conf = strings.Join(opt.Config, "\n") + "\n" + conf + "AllowTcpForwarding yes\n"
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := []string{SSHDPath, "-D", "-e", "-f", confPath}
	var cmd *exec.Cmd
	if opt.Command != nil {
		cmd = opt.Command(argv)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	s := &SSHD{Addr: addr, HostKey: host, Dir: dir, cmd: cmd}
	t.Cleanup(func() {
		s.Stop()
		logf.Close()
		if t.Failed() {
			if b, _ := os.ReadFile(logf.Name()); len(b) > 0 {
				t.Logf("sshd %s log:\n%s", addr, b)
			}
		}
	})
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("sshd on %s did not start: %s", addr, b)
	return nil
}
