package testbed

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Gate starts commands on the bed's hosts together. Each is forked and
// made ready by a shell waiting on a pipe, and execs its program when the
// gate opens, right after a benchmark's clock starts: forking 32 processes
// through nsenter one after another took 0.2 s, which the last hosts lost
// before they began.
type Gate struct {
	ws     []*os.File
	once   sync.Once
	opened chan struct{}
}

// NewGate returns a closed gate.
func NewGate() *Gate { return &Gate{opened: make(chan struct{})} }

// Command is h.Command for name and args behind the gate.
func (g *Gate) Command(ctx context.Context, h *Host, name string, args ...string) *exec.Cmd {
	return h.Command(ctx, "sh", append([]string{"-c", `read -r _; exec "$0" "$@"`, name}, args...)...)
}

// Start starts cmd, made by Command, which then waits for the gate to
// open.
func (g *Gate) Start(cmd *exec.Cmd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdin = r
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return err
	}
	g.ws = append(g.ws, w)
	return nil
}

// Open lets every started command run; later calls do nothing.
func (g *Gate) Open() {
	g.once.Do(func() {
		for _, w := range g.ws {
			w.Write([]byte{'\n'})
			w.Close()
		}
		close(g.opened)
	})
}

// Opened returns a channel closed once the gate opened.
func (g *Gate) Opened() <-chan struct{} { return g.opened }

// Stop ends a started command: SIGTERM, then SIGKILL after 10 s, and
// waits for it.
func Stop(c *exec.Cmd) {
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.Process.Kill()
		<-done
	}
}
