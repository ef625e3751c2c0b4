package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/murder-deploy/murder/internal/progress"
)

// detachChildEnv makes the test binary act as a detached child (see
// runDetachChild) instead of running tests.
const detachChildEnv = "MURDER_AGENT_TEST_DETACH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(detachChildEnv); mode != "" {
		os.Exit(runDetachChild(mode))
	}
	os.Exit(m.Run())
}

// runDetachChild plays a detached peer: it reports on StatusFD and, in
// "done" mode, keeps running after done and then writes its session id to
// the marker file named by the first argument.
func runDetachChild(mode string) int {
	w, err := StatusWriter(StatusFD)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rep := NewStatusReporter(w)
	rep.Report(progress.Event{Event: progress.EventProgress, Tag: "t", BytesDone: 1, BytesTotal: 2})
	switch mode {
	case "done":
		rep.Report(progress.Event{Event: progress.EventDone, Tag: "t", BytesDone: 2, BytesTotal: 2})
		rep.Report(progress.Event{Event: progress.EventProgress, Tag: "t"}) // dropped: pipe closed after done
		time.Sleep(300 * time.Millisecond)                                  // outlive the parent's Detach call
		sid, _ := unix.Getsid(0)
		fmt.Println("child still running after done")
		_ = os.WriteFile(os.Args[len(os.Args)-1], fmt.Appendf(nil, "%d", sid), 0o644)
		return 0
	case "error":
		rep.Report(progress.Event{Event: progress.EventError, Tag: "t", Message: "destination is not empty"})
		return 1
	case "hang":
		time.Sleep(time.Minute)
		return 0
	default: // crash without a final event
		fmt.Fprintln(os.Stderr, "child crashing")
		return 3
	}
}

func TestDetach(t *testing.T) {
	tests := []struct {
		mode    string
		wantErr string
	}{
		{mode: "done"},
		{mode: "error", wantErr: "destination is not empty"},
		{mode: "crash", wantErr: "exited before finishing"},
		{mode: "hang", wantErr: "detached peer stopped"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "marker")
			logPath := filepath.Join(dir, "child.log")
			t.Setenv(detachChildEnv, tt.mode)
			var events []progress.Event
			rep := &captureReporter{fn: func(ev progress.Event) { events = append(events, ev) }}
			ctx := context.Background()
			if tt.mode == "hang" {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
			}
			pid, err := Detach(ctx, DetachConfig{
				Executable: os.Args[0],
				Args:       []string{"-test.run=^$", marker},
				LogPath:    logPath,
				Reporter:   rep,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Detach error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 2 || events[1].Event != progress.EventDone {
				t.Fatalf("relayed events %+v, want progress then done", events)
			}
			// The child outlives Detach and runs in its own session.
			var sid []byte
			for range 200 {
				if sid, err = os.ReadFile(marker); err == nil && len(sid) > 0 {
					break
				}
				time.Sleep(25 * time.Millisecond)
			}
			if string(sid) != fmt.Sprint(pid) {
				t.Fatalf("child session id %q, want its own pid %d", sid, pid)
			}
			for range 200 {
				if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "child still running") {
					return
				}
				time.Sleep(25 * time.Millisecond)
			}
			t.Fatalf("child's stdout did not reach the log %s", logPath)
		})
	}
}

type captureReporter struct{ fn func(progress.Event) }

func (c *captureReporter) Report(ev progress.Event) { c.fn(ev) }
func (c *captureReporter) Close() error             { return nil }
