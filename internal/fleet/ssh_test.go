package fleet

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/murder-deploy/murder/internal/fleet/fleettest"
	"github.com/murder-deploy/murder/internal/testenv"
)

// sshFixture is a client key, a known_hosts file and two sshd servers: good
// is listed in known_hosts, bad is listed with another host's key.
type sshFixture struct {
	cfg       SSHConfig
	good, bad Host
	unknown   Host
	dir       string
}

func newSSHFixture(t *testing.T) *sshFixture {
	t.Helper()
	fleettest.NeedSSHD(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	client := fleettest.NewKey(t)
	good := fleettest.StartSSHD(t, "127.0.0.1", 0, fleettest.Options{}, client)
	bad := fleettest.StartSSHD(t, "127.0.0.1", 0, fleettest.Options{}, client)
	unknown := fleettest.StartSSHD(t, "127.0.0.1", 0, fleettest.Options{}, client)
	impostor := fleettest.NewKey(t)
	known := filepath.Join(dir, "known_hosts")
	lines := good.KnownHostsLine() + "\n" +
		strings.Replace(bad.KnownHostsLine(), strings.TrimSpace(string(bad.HostKey.AuthKey)), strings.TrimSpace(string(impostor.AuthKey)), 1) + "\n"
	if err := os.WriteFile(known, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	host := func(addr string) Host {
		h, err := ParseHost("root@" + addr)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	return &sshFixture{
		cfg: SSHConfig{
			IdentityFiles:  []string{client.WriteKey(t, dir, "id_ed25519")},
			KnownHosts:     known,
			ConnectTimeout: 5 * time.Second,
			CommandTimeout: time.Minute,
		},
		good: host(good.Addr), bad: host(bad.Addr), unknown: host(unknown.Addr), dir: dir,
	}
}

func TestRunner(t *testing.T) {
	fx := newSSHFixture(t)
	r, err := NewRunner(fx.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	c, err := r.Dial(ctx, fx.good)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteIP(); got != "127.0.0.1" {
		t.Errorf("RemoteIP: got %q, want 127.0.0.1", got)
	}

	t.Run("output", func(t *testing.T) {
		out, err := c.Output(ctx, "echo hello "+Quote("it's"))
		if err != nil || out != "hello it's\n" {
			t.Errorf("got %q, %v; want %q", out, err, "hello it's\n")
		}
	})
	t.Run("exit status", func(t *testing.T) {
		_, err := c.Output(ctx, "echo boom >&2; exit 3")
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Status != 3 || ee.Stderr != "boom" {
			t.Errorf("got %v, want exit status 3 with stderr boom", err)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		var out strings.Builder
		if err := c.Run(ctx, "tr a-z A-Z", strings.NewReader("murder"), &out, nil); err != nil || out.String() != "MURDER" {
			t.Errorf("got %q, %v", out.String(), err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		err := c.Run(cctx, "sleep 30", nil, nil, nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
	t.Run("command timeout", func(t *testing.T) {
		short := *c
		short.timeout = 200 * time.Millisecond
		err := short.Run(ctx, "sleep 30", nil, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("got %v, want a timeout", err)
		}
	})
	t.Run("copy and fetch", func(t *testing.T) {
		src := filepath.Join(fx.dir, "payload")
		data := []byte(strings.Repeat("murder\x00\xff", 100000))
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "sub dir", "it's")
		for i, want := range []CopyResult{Copied, Unchanged} {
			got, err := c.CopyFile(ctx, src, dst, 0o755, true)
			if err != nil || got != want {
				t.Fatalf("copy %d: got %v, %v; want %v", i, got, err, want)
			}
		}
		b, err := os.ReadFile(dst)
		if err != nil || string(b) != string(data) {
			t.Fatalf("copied file differs (%v)", err)
		}
		if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
			t.Errorf("mode: got %v, want 0755", fi.Mode().Perm())
		}
		if got, _ := c.CopyFile(ctx, src, dst, 0o755, false); got != Copied {
			t.Errorf("copy without skip: got %v, want Copied", got)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), "*murder-tmp*")); len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
		back := filepath.Join(t.TempDir(), "back")
		if err := c.FetchFile(ctx, dst, back); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(back); string(b) != string(data) {
			t.Error("fetched file differs")
		}
		if err := c.FetchFile(ctx, dst+".missing", back); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("fetch of a missing file: got %v", err)
		}
	})
	t.Run("put then", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "conf")
		src := LocalBytes([]byte("port = 8080\n"))
		for i, want := range []CopyResult{Copied, Unchanged} {
			var out strings.Builder
			got, err := c.Put(ctx, Put{Src: src, Dst: dst, Mode: 0o600, SkipSame: true, Then: `wc -c < "$d"`, ThenOut: &out})
			if err != nil || got != want {
				t.Fatalf("put %d: got %v, %v; want %v", i, got, err, want)
			}
			if strings.TrimSpace(out.String()) != "12" {
				t.Errorf("put %d: Then printed %q, want the size of the placed file, 12", i, out.String())
			}
		}
		_, err := c.Put(ctx, Put{Src: src, Dst: dst, Mode: 0o600, Then: "echo broken >&2; exit 4"})
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Status != 4 || !strings.Contains(ee.Stderr, "broken") {
			t.Errorf("failing Then: got %v, want exit status 4 saying broken", err)
		}
	})
	t.Run("quick", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "bin")
		put := func(src *LocalFile) CopyResult {
			t.Helper()
			got, err := c.Put(ctx, Put{Src: src, Dst: dst, Mode: 0o755, SkipSame: true, Quick: true})
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		v1, v2 := LocalBytes([]byte("version 1\n")), LocalBytes([]byte("version 2\n"))
		if got := put(v1); got != Copied {
			t.Fatalf("first put: got %v, want Copied", got)
		}
		if _, err := os.Stat(dst + ".murder-sum"); err != nil {
			t.Fatalf("no stamp after a copy: %v", err)
		}
		if got := put(v1); got != Unchanged {
			t.Errorf("same content: got %v, want Unchanged", got)
		}
		// The same size, written in place: the stamp no longer holds.
		if err := os.WriteFile(dst, []byte("version 3\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := put(v1); got != Copied {
			t.Errorf("content changed in place: got %v, want Copied", got)
		}
		// A stamp claiming other content is not believed either.
		if got := put(v2); got != Copied {
			t.Errorf("new content: got %v, want Copied", got)
		}
		if b, _ := os.ReadFile(dst); string(b) != "version 2\n" {
			t.Errorf("got %q, want version 2", b)
		}
		// The stamp is what saves the hashing: one that matches the
		// file's stat is believed.
		stamp, err := os.ReadFile(dst + ".murder-sum")
		if err != nil {
			t.Fatal(err)
		}
		forged := strings.Replace(string(stamp), v2.sum, v1.sum, 1)
		if err := os.WriteFile(dst+".murder-sum", []byte(forged), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := put(v1); got != Unchanged {
			t.Errorf("with a stamp that matches the file's stat: got %v, want Unchanged (the stamp trusted)", got)
		}
	})
	t.Run("tunnel", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			if a, err := l.Accept(); err == nil {
				a.Write([]byte("hi"))
				a.Close()
			}
		}()
		nc, err := c.DialTCP(ctx, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		b := make([]byte, 2)
		if _, err := nc.Read(b); err != nil || string(b) != "hi" {
			t.Errorf("got %q, %v", b, err)
		}
	})
}

func TestRunnerHostKeys(t *testing.T) {
	fx := newSSHFixture(t)
	r, err := NewRunner(fx.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	down := Host{Spec: "down", Name: "127.0.0.1", Port: testenv.FreePort(t, "127.0.0.1"), User: "root"}

	var ran atomic.Int32
	err = Each(ctx, []Host{fx.bad, fx.good, fx.unknown, down}, 2, func(ctx context.Context, h Host) error {
		c, err := r.Dial(ctx, h)
		if err != nil {
			return err
		}
		defer c.Close()
		ran.Add(1)
		_, err = c.Output(ctx, "true")
		return err
	})
	if ran.Load() != 1 {
		t.Errorf("commands ran on %d hosts, want 1 (only the good host)", ran.Load())
	}
	he := HostErrors(err)
	if len(he) != 3 {
		t.Fatalf("got %d host errors, want 3: %v", len(he), err)
	}
	byHost := map[string]error{}
	for _, e := range he {
		byHost[e.Host.Spec] = e.Err
	}
	if e := byHost[fx.bad.Spec]; !errors.Is(e, ErrHostKey) || !strings.Contains(e.Error(), "does not match") {
		t.Errorf("mismatched key: got %v", e)
	}
	if e := byHost[fx.unknown.Spec]; !errors.Is(e, ErrHostKey) || !strings.Contains(e.Error(), "is not in") {
		t.Errorf("unknown key: got %v", e)
	}
	if e := byHost["down"]; e == nil || !strings.Contains(e.Error(), "connect") {
		t.Errorf("down host: got %v", e)
	}

	// With AcceptNewHostKeys the unknown host is added, the changed one still fails.
	cfg := fx.cfg
	cfg.AcceptNewHostKeys = true
	r2, err := NewRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for i := 0; i < 2; i++ {
		c, err := r2.Dial(ctx, fx.unknown)
		if err != nil {
			t.Fatalf("accept new, round %d: %v", i, err)
		}
		c.Close()
	}
	if _, err := r2.Dial(ctx, fx.bad); !errors.Is(err, ErrHostKey) {
		t.Errorf("accept new must not accept a changed key: got %v", err)
	}
	b, _ := os.ReadFile(fx.cfg.KnownHosts)
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("known_hosts has %d lines, want 3:\n%s", n, b)
	}
	r3, err := NewRunner(fx.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if c, err := r3.Dial(ctx, fx.unknown); err != nil {
		t.Errorf("added key not used by a new runner: %v", err)
	} else {
		c.Close()
	}
}

func TestRunnerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SSH_AUTH_SOCK", "")
	key := fleettest.NewKey(t).WriteKey(t, dir, "id")
	tests := []struct {
		name string
		cfg  SSHConfig
		want string
	}{
		{"missing identity", SSHConfig{User: "x", IdentityFiles: []string{filepath.Join(dir, "nope")}}, "identity file"},
		{"bad identity", SSHConfig{User: "x", IdentityFiles: []string{filepath.Join(dir, "known")}}, "identity file"},
		{"missing known_hosts", SSHConfig{User: "x", IdentityFiles: []string{key}, KnownHosts: filepath.Join(dir, "none")}, "--accept-new-host-keys"},
	}
	os.WriteFile(filepath.Join(dir, "known"), []byte("not a key"), 0o600)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRunner(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	r, err := NewRunner(SSHConfig{User: "x", IdentityFiles: []string{key}, KnownHosts: filepath.Join(dir, "new"), AcceptNewHostKeys: true}, nil)
	if err != nil {
		t.Fatalf("accept new with a missing known_hosts: %v", err)
	}
	r.Close()
	if _, err := os.Stat(filepath.Join(dir, "new")); err != nil {
		t.Errorf("known_hosts not created: %v", err)
	}
}

func TestEachBounded(t *testing.T) {
	var cur, peak atomic.Int32
	hosts := make([]Host, 20)
	for i := range hosts {
		hosts[i] = Host{Spec: "h" + strconv.Itoa(i), Name: "h"}
	}
	err := Each(context.Background(), hosts, 3, func(ctx context.Context, h Host) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		cur.Add(-1)
		if h.Spec == "h7" {
			return errors.New("boom")
		}
		return nil
	})
	if peak.Load() > 3 {
		t.Errorf("peak concurrency %d, want <= 3", peak.Load())
	}
	he := HostErrors(err)
	if len(he) != 1 || he[0].Host.Spec != "h7" || he[0].Error() != "h7: boom" {
		t.Errorf("got %v", err)
	}
}

func TestDialTimeout(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	key := fleettest.NewKey(t).WriteKey(t, dir, "id")
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A server that accepts connections and never says a word.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r, err := NewRunner(SSHConfig{User: "x", IdentityFiles: []string{key}, KnownHosts: known, ConnectTimeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = r.Dial(context.Background(), Host{Spec: "silent", Name: "127.0.0.1", Port: port})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("got %v, want a handshake timeout", err)
	}
}

func TestRunnerAgent(t *testing.T) {
	fleettest.NeedSSHD(t)
	dir := t.TempDir()
	client := fleettest.NewKey(t)
	srv := fleettest.StartSSHD(t, "127.0.0.1", 0, fleettest.Options{}, client)
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(srv.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An ssh agent holding the client key, on a unix socket.
	keyring := agent.NewKeyring()
	priv, err := ssh.ParseRawPrivateKey(client.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", dir) // no default identity files
	r, err := NewRunner(SSHConfig{User: "root", KnownHosts: known}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h, _ := ParseHost(srv.Addr)
	c, err := r.Dial(context.Background(), h)
	if err != nil {
		t.Fatalf("dial with the agent's key: %v", err)
	}
	defer c.Close()
	if out, err := c.Output(context.Background(), "echo agent"); err != nil || out != "agent\n" {
		t.Errorf("got %q, %v", out, err)
	}
}
