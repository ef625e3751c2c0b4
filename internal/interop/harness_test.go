package interop

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

// murderBin is the murder binary built once by TestMain.
var murderBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "murder-interop-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if murderBin, err = testenv.BuildMurder(dir); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	return m.Run()
}

// startTracker runs murder's tracker in-process on loopback and returns its
// announce URL.
func startTracker(t *testing.T) string {
	t.Helper()
	srv, err := tracker.NewServer(tracker.Config{Interval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts.URL + "/announce"
}

// waitSeeders polls the tracker's scrape until it counts n seeders of mi.
func waitSeeders(t *testing.T, announce string, mi *metainfo.MetaInfo, n int) {
	t.Helper()
	waitSeedersVia(t, http.DefaultClient, announce, mi, n)
}

// waitSeedersVia is waitSeeders with the given HTTP client.
func waitSeedersVia(t *testing.T, client *http.Client, announce string, mi *metainfo.MetaInfo, n int) {
	t.Helper()
	su, err := tracker.ScrapeURL(announce)
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.InfoHash()
	u := su + "?info_hash=" + escapeBytes(ih[:])
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			stats, err := tracker.DecodeScrapeResponse(body)
			if err == nil && stats[ih].Complete >= n {
				return
			}
			last = fmt.Sprintf("%v %q", err, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("tracker %s never counted %d seeders of %s (last reply %s)", announce, n, mi.Info.Name, last)
}

func escapeBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// proc is a child process whose output is kept in files for failure
// messages. It runs in its own process group so its children stop with it.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{}
	err  error
}

// lineLog collects a process's output and lets tests wait for a line.
type lineLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
	seen  chan struct{}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.buf.Next(i + 1)[:i]))
	}
	close(l.seen)
	l.seen = make(chan struct{})
	return len(p), nil
}

// changed returns a channel closed at the next write.
func (l *lineLog) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n" + l.buf.String()
}

// start runs name with args; the process is stopped when the test ends.
func start(t *testing.T, dir string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return startCmd(t, filepath.Base(name), cmd)
}

// startCmd starts cmd in a process group of its own; it is stopped when
// the test ends.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	args := cmd.Args[1:]
	p := &proc{name: name, done: make(chan struct{}), out: &lineLog{seen: make(chan struct{})}, cmd: cmd}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if p.cmd.SysProcAttr == nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	p.cmd.SysProcAttr.Setpgid = true
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", p.name, strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL after 5 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitLine waits until the output has a line containing s.
func (p *proc) waitLine(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		p.out.mu.Lock()
		for _, l := range p.out.lines {
			if strings.Contains(l, s) {
				p.out.mu.Unlock()
				return
			}
		}
		seen := p.out.seen
		p.out.mu.Unlock()
		select {
		case <-seen:
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, s, p.out.String())
		case <-deadline:
			t.Fatalf("%s did not print %q within %s:\n%s", p.name, s, d, p.out.String())
		}
	}
}

// wait waits for the process to exit and fails the test if it fails.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s failed: %v\n%s", p.name, p.err, p.out.String())
		}
	case <-time.After(d):
		t.Fatalf("%s did not finish within %s:\n%s", p.name, d, p.out.String())
	}
}

// defaultTree is the tree most tests move: about 8 MiB in a few files.
var defaultTree = map[string]int{
	"bin/app":            3<<20 + 12345,
	"etc/app.conf":       700,
	"share/data/big.bin": 5 << 20,
	"share/empty":        0,
	"README":             1 << 10,
}

// smallTree is for slow clients: about 1 MiB.
var smallTree = map[string]int{
	"bin/app":      1<<20 + 12345,
	"etc/app.conf": 700,
	"share/empty":  0,
}

// writeTree writes defaultTree with random contents under dir.
func writeTree(t *testing.T, dir string) string {
	t.Helper()
	return writeTreeOf(t, dir, defaultTree)
}

// writeTreeOf writes files (path -> size) of random bytes under dir.
func writeTreeOf(t *testing.T, dir string, files map[string]int) string {
	t.Helper()
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, randomBytes(t, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
