package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/storage"
)

// StatusFD is the file descriptor on which a detached child finds the pipe
// to its parent. The child writes its progress events there as JSON lines
// (see progress.Event) and closes it once it has reported done or error.
const StatusFD = 3

// DetachConfig describes the background process that Detach starts.
type DetachConfig struct {
	// Executable is the murder binary to run; "" means this one.
	Executable string
	// Args are the child's arguments without the program name. They must
	// make the child write its events to StatusFD.
	Args []string
	// LogPath receives the child's standard output and error (appended).
	LogPath string
	// Reporter receives the child's events until it is done; nil drops them.
	Reporter Reporter
	// Logger receives the parent's own messages; nil discards them.
	Logger *slog.Logger
}

// Detach starts a child in a new session (setsid), relays its progress
// events to cfg.Reporter and returns as soon as the child reports done,
// leaving it running (seeding) after this process exits. It returns the
// child's error message when the child reports an error or exits early.
// When ctx ends first, the child is terminated.
func Detach(ctx context.Context, cfg DetachConfig) (pid int, err error) {
	exe := cfg.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return 0, fmt.Errorf("agent: detach: %w", err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rep := cfg.Reporter
	if rep == nil {
		rep = nopReporter{}
	}
	logf, _, err := storage.OpenOwned(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("agent: detach: open log: %w", err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("agent: detach: %w", err)
	}
	defer pr.Close()

	cmd := exec.Command(exe, cfg.Args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = make([]*os.File, StatusFD-2)
	cmd.ExtraFiles[StatusFD-3] = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return 0, fmt.Errorf("agent: detach: start %s: %w", exe, err)
	}
	pid = cmd.Process.Pid
	logger.Info("detached peer started", "pid", pid, "log", cfg.LogPath)

	type result struct {
		done bool
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r := progress.NewReader(pr)
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			rep.Report(ev)
			switch ev.Event {
			case progress.EventDone:
				res <- result{done: true}
				return
			case progress.EventError:
				res <- result{err: errors.New(ev.Message)}
				return
			}
		}
		res <- result{}
	}()

	select {
	case r := <-res:
		if r.done {
			// The child keeps running in its own session; do not wait for it.
			_ = cmd.Process.Release()
			return pid, nil
		}
		waitErr := waitTimeout(cmd, 10*time.Second)
		if r.err != nil {
			return pid, fmt.Errorf("agent: detached peer: %w (log: %s)", r.err, cfg.LogPath)
		}
		return pid, fmt.Errorf("agent: detached peer exited before finishing (%v); see %s", waitErr, cfg.LogPath)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = waitTimeout(cmd, 10*time.Second)
		return pid, fmt.Errorf("agent: detached peer stopped: %w", context.Cause(ctx))
	}
}

// waitTimeout waits for cmd, killing it if it has not exited after d.
func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return <-done
	}
}

// StatusWriter returns the status pipe of a detached child (see StatusFD),
// or an error when this process was not started by Detach.
func StatusWriter(fd int) (io.WriteCloser, error) {
	f := os.NewFile(uintptr(fd), "status")
	if f == nil {
		return nil, fmt.Errorf("agent: status fd %d is not open", fd)
	}
	if _, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("agent: status fd %d: %w", fd, err)
	}
	return f, nil
}

// NewStatusReporter returns the Reporter a detached child writes to its
// status pipe (see StatusWriter): JSON lines, closing the pipe after the
// done or error event so the parent sees the end of the stream.
func NewStatusReporter(w io.WriteCloser) *JSONReporter {
	return &JSONReporter{w: w, closeFinal: true}
}
