package agent

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/progress"
)

// Reporter receives progress events. Implementations are safe for use by
// several goroutines.
type Reporter interface {
	Report(progress.Event)
	// Close flushes and stops the reporter; later events are dropped.
	Close() error
}

// ProgressMode selects how `murder peer` shows progress.
type ProgressMode string

// Progress modes accepted by --progress.
const (
	ProgressAuto ProgressMode = "auto" // bar on a terminal, none otherwise
	ProgressBar  ProgressMode = "bar"  // progress bar on standard error
	ProgressJSON ProgressMode = "json" // one JSON event per line on standard output
	ProgressNone ProgressMode = "none"
)

// ParseProgressMode validates a --progress value.
func ParseProgressMode(s string) (ProgressMode, error) {
	switch m := ProgressMode(s); m {
	case ProgressAuto, ProgressBar, ProgressJSON, ProgressNone:
		return m, nil
	}
	return "", fmt.Errorf("agent: unknown progress mode %q (use auto, bar, json or none)", s)
}

// NewReporter returns the Reporter for mode: JSON lines on stdout, a bar on
// stderr, or nothing. Auto picks the bar when stderr is a terminal.
func NewReporter(mode ProgressMode, stdout, stderr io.Writer) Reporter {
	switch mode {
	case ProgressJSON:
		return NewJSONReporter(stdout)
	case ProgressBar:
		return newBarReporter(stderr)
	case ProgressAuto:
		if isTerminal(stderr) {
			return newBarReporter(stderr)
		}
	}
	return nopReporter{}
}

// LogWriter returns where human-readable logs should go while r is active:
// above the bar for a bar reporter, stderr otherwise.
func LogWriter(r Reporter, stderr io.Writer) io.Writer {
	if b, ok := r.(*barReporter); ok {
		return b.logWriter()
	}
	return stderr
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

type nopReporter struct{}

func (nopReporter) Report(progress.Event) {}
func (nopReporter) Close() error          { return nil }

// JSONReporter writes each event as one JSON object per line.
type JSONReporter struct {
	mu         sync.Mutex
	w          io.Writer
	closed     bool
	err        error
	closeFinal bool // close after done or error (status pipe)
}

// NewJSONReporter returns a Reporter that writes JSON lines to w.
func NewJSONReporter(w io.Writer) *JSONReporter {
	return &JSONReporter{w: w}
}

// Report writes ev as one line. After the first write error (a reader that
// went away, as when a detaching parent exits) further events are dropped.
func (r *JSONReporter) Report(ev progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil {
		return
	}
	b, err := progress.Encode(ev)
	if err != nil {
		r.err = err
		return
	}
	_, r.err = r.w.Write(b)
	if r.closeFinal && ev.Final() {
		r.closeLocked()
	}
}

// Close stops the reporter and closes the writer if it is an io.Closer
// other than the process's standard output or error.
func (r *JSONReporter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeLocked()
}

func (r *JSONReporter) closeLocked() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if c, ok := r.w.(io.Closer); ok && c != os.Stdout && c != os.Stderr {
		return c.Close()
	}
	return nil
}

// barReporter draws one progress bar with mpb.
type barReporter struct {
	mu   sync.Mutex
	out  io.Writer
	p    *mpb.Progress
	bar  *mpb.Bar
	evMu sync.Mutex // guards ev alone: mpb's render goroutine reads it
	ev   progress.Event
}

func newBarReporter(w io.Writer) *barReporter {
	return &barReporter{out: w, p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(60), mpb.WithAutoRefresh())}
}

func (b *barReporter) logWriter() io.Writer { return barLogWriter{b} }

type barLogWriter struct{ b *barReporter }

func (w barLogWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if w.b.p == nil {
		return w.b.out.Write(p)
	}
	return w.b.p.Write(p)
}

func (b *barReporter) Report(ev progress.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p == nil {
		return
	}
	b.evMu.Lock()
	b.ev = ev
	b.evMu.Unlock()
	if b.bar == nil && ev.BytesTotal > 0 {
		b.bar = b.p.New(ev.BytesTotal, mpb.BarStyle(),
			mpb.PrependDecorators(
				decor.Name(ev.Tag+" ", decor.WCSyncSpaceR),
				decor.Any(func(decor.Statistics) string { return b.status() }, decor.WCSyncSpace),
			),
			mpb.AppendDecorators(
				decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
				decor.Percentage(decor.WCSyncSpace),
			),
		)
	}
	if b.bar == nil {
		return
	}
	switch ev.Event {
	case progress.EventError:
		b.bar.Abort(false)
	case progress.EventDone:
		b.bar.SetTotal(ev.BytesTotal, true)
	default:
		b.bar.SetCurrent(ev.BytesDone)
	}
}

// status is called from mpb's render goroutine, so it takes evMu only.
func (b *barReporter) status() string {
	b.evMu.Lock()
	ev := b.ev
	b.evMu.Unlock()
	s := ev.State
	if ev.Event == progress.EventDone {
		s = "done"
	}
	return fmt.Sprintf("%-11s ↓%s ↑%s %d peers", s, bytesize.FormatRate(float64(ev.DownRate)), bytesize.FormatRate(float64(ev.UpRate)), ev.Peers)
}

func (b *barReporter) Close() error {
	b.mu.Lock()
	p, bar := b.p, b.bar
	b.p = nil
	b.mu.Unlock()
	if p == nil {
		return nil
	}
	if bar != nil && !bar.AbortedOrCompleted() {
		bar.Abort(false)
	}
	p.Wait()
	return nil
}
