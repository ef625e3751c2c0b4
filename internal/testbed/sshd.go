package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/murder-deploy/murder/internal/testenv"
)

// SSHD is an OpenSSH server running inside a host.
type SSHD struct {
	// Addr is where the server listens: the host's address, port 22.
	Addr netip.AddrPort
	// HostKey is the server's public host key in authorized_keys form
	// ("ssh-ed25519 AAAA..."), for a known_hosts file or a host key check.
	HostKey string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// KnownHostsLine returns the line that a known_hosts file needs to trust
// the server by its address.
func (s *SSHD) KnownHostsLine() string {
	return s.Addr.Addr().String() + " " + s.HostKey
}

// Stop kills the server and waits for it to exit.
func (s *SSHD) Stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// StartSSHD runs Debian's /usr/sbin/sshd inside the host, listening on the
// host's address, port 22, and returns once it accepts connections.
//
// It accepts root logins with the public keys in authorizedKeys (one or
// more lines in authorized_keys format) and nothing else: no passwords,
// no PAM. A fresh ed25519 host key is generated per host; its public half
// is in SSHD.HostKey. Sessions run as root with the host's view: its
// network and its private directories, and an empty root ~/.bashrc (the
// machine's may run slow tools on every command). The server's files live in the
// host's first private directory (Config.Dirs, /tmp by default) under
// .testbed-sshd. The server stops when ctx ends, with Stop, or with the
// bed's Close.
//
// It needs /usr/sbin/sshd and ssh-keygen (Debian openssh-server and
// openssh-client), and creates /run/sshd, the directory sshd insists on.
func (h *Host) StartSSHD(ctx context.Context, authorizedKeys string) (*SSHD, error) {
	const sshd = "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	inner := path.Join(h.dirs[0], ".testbed-sshd")
	outer := h.Path(inner)
	if err := os.MkdirAll(outer, 0o700); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	key := path.Join(outer, "ssh_host_ed25519_key")
	os.Remove(key)
	os.Remove(key + ".pub")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.ns, "-f", key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testbed: ssh-keygen: %w: %s", err, strings.TrimSpace(string(out)))
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return nil, fmt.Errorf("testbed: bad host key %q", pub)
	}
	if err := os.WriteFile(path.Join(outer, "authorized_keys"), []byte(strings.TrimSpace(authorizedKeys)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	conf := strings.Join([]string{
		"Port 22",
		"ListenAddress " + h.addr.String(),
		"HostKey " + path.Join(inner, "ssh_host_ed25519_key"),
		"AuthorizedKeysFile " + path.Join(inner, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"PidFile none",
		"MaxStartups 100:30:200",
		"MaxSessions 100",
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
	if err := os.WriteFile(path.Join(outer, "sshd_config"), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := h.hideRootRC(ctx, inner); err != nil {
		return nil, err
	}
	cmd := h.Command(ctx, sshd, "-D", "-e", "-f", path.Join(inner, "sshd_config"))
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: start sshd in %s: %w", h.ns, err)
	}
	exited := make(chan struct{})
	s := &SSHD{Addr: netip.AddrPortFrom(h.addr, 22), HostKey: f[0] + " " + f[1], cmd: cmd, exited: exited}
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := h.DialContext(ctx, "tcp", s.Addr.String())
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("testbed: sshd in %s exited: %s", h.ns, strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			cmd.Process.Kill()
			return nil, fmt.Errorf("testbed: sshd in %s: %w", h.ns, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("testbed: sshd in %s does not accept connections: %s", h.ns, strings.TrimSpace(stderr.String()))
		}
	}
}

// rootRC is the file bash reads for every command that sshd runs as root.
// On the machines murder is built on it runs `pyenv init`, which costs
// about 0.6 s and takes a lock shared by every host of the bed.
const rootRC = "/root/.bashrc"

// hideRootRC binds an empty file over rootRC in the host's mount
// namespace, when there is one to hide.
func (h *Host) hideRootRC(ctx context.Context, inner string) error {
	if _, err := os.Stat(rootRC); err != nil {
		return nil
	}
	empty := path.Join(inner, "empty-bashrc")
	if err := os.WriteFile(h.Path(empty), nil, 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if _, err := h.Run(ctx, "mount", "--bind", empty, rootRC); err != nil {
		return err
	}
	return nil
}
