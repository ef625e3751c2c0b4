package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig says how to reach the hosts. The zero value uses the current
// user, port 22, the ssh agent and the usual identity files, and
// ~/.ssh/known_hosts.
type SSHConfig struct {
	User              string        // "" = the current user
	Port              int           // 0 = 22
	IdentityFiles     []string      // private keys; "" entries ignored; ~ expands to $HOME
	KnownHosts        string        // "" = ~/.ssh/known_hosts
	AcceptNewHostKeys bool          // add unknown hosts to KnownHosts instead of failing (a changed key still fails)
	Concurrency       int           // hosts worked on at once; 0 = 100
	ConnectTimeout    time.Duration // TCP connect plus SSH handshake; 0 = 10s
	CommandTimeout    time.Duration // bound on one remote command; 0 = 10m
}

// ErrHostKey is wrapped by errors about a host key that is unknown or
// does not match known_hosts.
var ErrHostKey = errors.New("fleet: host key verification failed")

// Runner opens SSH connections to hosts with one set of credentials and one
// known_hosts file.
type Runner struct {
	cfg     SSHConfig
	log     *slog.Logger
	auth    []ssh.AuthMethod
	known   string
	mu      sync.Mutex // guards check and appends to known
	agentMu sync.Mutex // the agent connection is not safe for concurrent use
	check   ssh.HostKeyCallback
	closers []io.Closer
}

// NewRunner loads the identity files, connects to the ssh agent when
// SSH_AUTH_SOCK is set, and reads known_hosts.
func NewRunner(cfg SSHConfig, log *slog.Logger) (*Runner, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultSSHPort
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.User == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("fleet: no ssh user given and the current user is unknown: %w", err)
		}
		cfg.User = u.Username
	}
	r := &Runner{cfg: cfg, log: log}

	var signers []ssh.Signer
	files := cfg.IdentityFiles
	explicit := len(files) > 0
	if !explicit {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, "~/.ssh/"+n)
		}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		p := expandHome(f)
		data, err := os.ReadFile(p)
		if err != nil {
			if !explicit && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("fleet: identity file: %w", err)
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			var pe *ssh.PassphraseMissingError
			if errors.As(err, &pe) {
				log.Warn("identity file needs a passphrase; load it into ssh-agent instead", "file", p)
				continue
			}
			return nil, fmt.Errorf("fleet: identity file %s: %w", p, err)
		}
		signers = append(signers, s)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			r.closers = append(r.closers, c)
			ag := agent.NewClient(c)
			r.auth = append(r.auth, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				r.agentMu.Lock()
				defer r.agentMu.Unlock()
				return ag.Signers()
			}))
		} else {
			log.Warn("ssh agent unreachable", "SSH_AUTH_SOCK", sock, "err", err)
		}
	}
	if len(signers) > 0 {
		r.auth = append([]ssh.AuthMethod{ssh.PublicKeys(signers...)}, r.auth...)
	}
	if len(r.auth) == 0 {
		return nil, errors.New("fleet: no ssh credentials: set ssh.identity_files in murder.toml or start ssh-agent")
	}

	r.known = cfg.KnownHosts
	if r.known == "" {
		r.known = "~/.ssh/known_hosts"
	}
	r.known = expandHome(r.known)
	if err := r.loadKnownHosts(); err != nil {
		return nil, err
	}
	return r, nil
}

// Concurrency returns how many hosts are worked on at once.
func (r *Runner) Concurrency() int { return r.cfg.Concurrency }

// CommandTimeout returns the bound on one remote command.
func (r *Runner) CommandTimeout() time.Duration { return r.cfg.CommandTimeout }

// Close releases the agent connection.
func (r *Runner) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func (r *Runner) loadKnownHosts() error {
	if _, err := os.Stat(r.known); errors.Is(err, os.ErrNotExist) {
		if !r.cfg.AcceptNewHostKeys {
			return fmt.Errorf("fleet: known_hosts file %s does not exist: create it (ssh-keyscan) or pass --accept-new-host-keys", r.known)
		}
		if err := os.MkdirAll(filepath.Dir(r.known), 0o700); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		if err := os.WriteFile(r.known, nil, 0o600); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
	}
	cb, err := knownhosts.New(r.known)
	if err != nil {
		return fmt.Errorf("fleet: known_hosts: %w", err)
	}
	r.check = cb
	return nil
}

// hostKeyCallback verifies a host key; with AcceptNewHostKeys an unknown host
// is appended to known_hosts.
func (r *Runner) hostKeyCallback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.check(hostname, remote, key)
	var ke *knownhosts.KeyError
	if err == nil || !errors.As(err, &ke) {
		return err
	}
	if len(ke.Want) > 0 {
		return fmt.Errorf("%w: %s offered a %s key that does not match %s:%d (possible man in the middle, or the host was reinstalled)",
			ErrHostKey, hostname, key.Type(), ke.Want[0].Filename, ke.Want[0].Line)
	}
	if !r.cfg.AcceptNewHostKeys {
		return fmt.Errorf("%w: %s is not in %s (add it with ssh-keyscan, or pass --accept-new-host-keys)", ErrHostKey, hostname, r.known)
	}
	f, ferr := os.OpenFile(r.known, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if ferr != nil {
		return fmt.Errorf("fleet: add host key: %w", ferr)
	}
	_, ferr = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
	if cerr := f.Close(); ferr == nil {
		ferr = cerr
	}
	if ferr != nil {
		return fmt.Errorf("fleet: add host key: %w", ferr)
	}
	r.log.Info("added host key", "host", hostname, "type", key.Type(), "file", r.known)
	cb, lerr := knownhosts.New(r.known)
	if lerr != nil {
		return fmt.Errorf("fleet: known_hosts: %w", lerr)
	}
	r.check = cb
	return nil
}

// hostKeyAlgorithms returns the key algorithms known_hosts holds for addr, so
// that the server is asked for a key we can check rather than one it prefers.
func (r *Runner) hostKeyAlgorithms(addr string) []string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil
	}
	r.mu.Lock()
	err = r.check(addr, &net.TCPAddr{IP: net.IPv4zero}, probe.PublicKey())
	r.mu.Unlock()
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		t := k.Key.Type()
		var add []string
		switch t {
		case ssh.KeyAlgoRSA:
			add = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		default:
			add = []string{t}
		}
		for _, a := range add {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// Conn is an SSH connection to one host.
type Conn struct {
	Host    Host
	client  *ssh.Client
	timeout time.Duration
	remote  net.Addr
}

// Dial connects to h, verifying its host key; the whole connect and
// handshake is bounded by the connect timeout. A connect that times out is
// tried once more, since a lost SYN on a busy network looks the same.
func (r *Runner) Dial(ctx context.Context, h Host) (*Conn, error) {
	c, err := r.dial(ctx, h)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
		r.log.Debug("connect timed out; trying again", "host", h.Spec)
		c, err = r.dial(ctx, h)
	}
	return c, err
}

func (r *Runner) dial(ctx context.Context, h Host) (*Conn, error) {
	port := h.Port
	if port == 0 {
		port = r.cfg.Port
	}
	usr := h.User
	if usr == "" {
		usr = r.cfg.User
	}
	addr := net.JoinHostPort(h.Name, strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fleet: connect: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	var hkErr error
	cfg := &ssh.ClientConfig{
		User: usr,
		Auth: r.auth,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			hkErr = r.hostKeyCallback(hostname, remote, key)
			return hkErr
		},
		HostKeyAlgorithms: r.hostKeyAlgorithms(addr),
		Timeout:           r.cfg.ConnectTimeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() || ctx.Err() != nil {
		if err == nil {
			c.Close()
		}
		nc.Close()
		return nil, fmt.Errorf("fleet: connect %s: ssh handshake timed out after %s", addr, r.cfg.ConnectTimeout)
	}
	if err != nil {
		nc.Close()
		if hkErr != nil {
			return nil, hkErr
		}
		return nil, fmt.Errorf("fleet: ssh %s@%s: %w", usr, addr, err)
	}
	nc.SetDeadline(time.Time{})
	client := ssh.NewClient(c, chans, reqs)
	go keepAlive(client)
	return &Conn{Host: h, client: client, timeout: r.cfg.CommandTimeout, remote: nc.RemoteAddr()}, nil
}

// keepAlive sends an SSH keepalive every 30 seconds so that a connection
// left idle during a long step (the tracker's while peers download) is not
// dropped by firewalls; a server that stops answering closes it.
func keepAlive(c *ssh.Client) {
	closed := make(chan struct{})
	go func() { c.Wait(); close(closed) }()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-closed:
			return
		case err := <-reply:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(time.Minute):
			c.Close()
			return
		}
	}
}

// RemoteIP returns the address SSH connected to.
func (c *Conn) RemoteIP() string {
	if a, ok := c.remote.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	h, _, _ := net.SplitHostPort(c.remote.String())
	return h
}

// Close closes the connection.
func (c *Conn) Close() error { return c.client.Close() }

// WithTimeout returns a view of the connection whose commands are bounded
// by d instead of the runner's command timeout.
func (c *Conn) WithTimeout(d time.Duration) *Conn {
	cc := *c
	cc.timeout = d
	return &cc
}

// ExitError is returned by Run when the remote command exits non-zero.
type ExitError struct {
	Status int
	Stderr string // the last part of standard error, trimmed
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("remote command exited with status %d", e.Status)
	}
	return fmt.Sprintf("%s (exit status %d)", e.Stderr, e.Status)
}

// Run runs cmd through the remote user's shell with stdin, stdout and
// stderr attached (nil = none). It is bounded by ctx and by the command
// timeout; on either the session is closed, which ends the remote command.
// A non-zero exit is an *ExitError carrying the tail of standard error.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := c.client.NewSession()
	if err != nil {
		return fmt.Errorf("fleet: ssh session: %w", err)
	}
	defer s.Close()
	tail := &tailBuffer{max: 2048}
	s.Stdin = stdin
	s.Stdout = stdout
	if stderr != nil {
		s.Stderr = io.MultiWriter(stderr, tail)
	} else {
		s.Stderr = tail
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// OpenSSH may not deliver the signal; closing the channel stops
		// the session either way, and the goroutine ends when the server
		// lets go of the channel.
		s.Signal(ssh.SIGKILL)
		s.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("fleet: remote command timed out after %s", c.timeout)
		}
		return ctx.Err()
	}
	return exitError(err, tail)
}

// exitError turns the error of a finished session into Run's errors.
func exitError(err error, tail *tailBuffer) error {
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Status: ee.ExitStatus(), Stderr: tail.String()}
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		return fmt.Errorf("fleet: remote command ended without an exit status: %s", tail.String())
	}
	return fmt.Errorf("fleet: ssh: %w", err)
}

// Interact runs cmd with pipes to its standard input and output, which
// it passes to talk; talk must read the standard output to its end, and
// close the standard input when it has nothing more to send. It is bounded
// like Run and returns Run's errors.
func (c *Conn) Interact(ctx context.Context, cmd string, talk func(stdin io.WriteCloser, stdout io.Reader)) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := c.client.NewSession()
	if err != nil {
		return fmt.Errorf("fleet: ssh session: %w", err)
	}
	defer s.Close()
	tail := &tailBuffer{max: 2048}
	s.Stderr = tail
	stdin, err := s.StdinPipe()
	if err != nil {
		return fmt.Errorf("fleet: ssh session: %w", err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return fmt.Errorf("fleet: ssh session: %w", err)
	}
	if err := s.Start(cmd); err != nil {
		return fmt.Errorf("fleet: ssh session: %w", err)
	}
	// Closing the session ends the remote command and unblocks talk.
	stop := context.AfterFunc(ctx, func() {
		s.Signal(ssh.SIGKILL)
		s.Close()
	})
	talk(stdin, stdout)
	err = s.Wait()
	if !stop() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("fleet: remote command timed out after %s", c.timeout)
		}
		return ctx.Err()
	}
	return exitError(err, tail)
}

// Output runs cmd and returns its standard output.
func (c *Conn) Output(ctx context.Context, cmd string) (string, error) {
	var out bytes.Buffer
	err := c.Run(ctx, cmd, nil, &out, nil)
	return out.String(), err
}

// DialTCP opens a TCP connection from the remote host to addr, tunnelled
// through SSH (direct-tcpip).
func (c *Conn) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return c.client.DialContext(ctx, "tcp", addr)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}
