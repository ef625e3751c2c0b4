package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/testenv"
)

func TestParseProgressMode(t *testing.T) {
	tests := []struct {
		in   string
		want ProgressMode
		bad  bool
	}{
		{in: "auto", want: ProgressAuto},
		{in: "bar", want: ProgressBar},
		{in: "json", want: ProgressJSON},
		{in: "none", want: ProgressNone},
		{in: "JSON", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseProgressMode(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseProgressMode(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestJSONReporterLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewJSONReporter(&buf)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r.Report(progress.Event{Event: progress.EventProgress, Tag: "v1", BytesDone: int64(i), BytesTotal: 8})
		})
	}
	wg.Wait()
	r.Report(progress.Event{Event: progress.EventError, Tag: "v1", Message: "boom \"quoted\"\nnext"})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r.Report(progress.Event{Event: progress.EventDone}) // dropped after Close

	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		n++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d %q: %v", n, sc.Text(), err)
		}
		for _, k := range []string{"event", "tag", "bytes_done", "bytes_total", "down_rate", "up_rate", "peers"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d %q lacks %q", n, sc.Text(), k)
			}
		}
		if m["event"] == progress.EventError && m["message"] != "boom \"quoted\"\nnext" {
			t.Errorf("error message = %q", m["message"])
		}
	}
	if n != 9 {
		t.Fatalf("got %d lines, want 9", n)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, bytes.ErrTooLarge
}

func TestJSONReporterStopsAfterWriteError(t *testing.T) {
	w := &failWriter{}
	r := NewJSONReporter(w)
	for range 5 {
		r.Report(progress.Event{Event: progress.EventProgress})
	}
	if w.n != 1 {
		t.Fatalf("writer called %d times, want 1", w.n)
	}
}

func TestBarReporterDraws(t *testing.T) {
	var buf testenv.Buffer
	r := NewReporter(ProgressBar, nil, &buf)
	lw := LogWriter(r, nil)
	r.Report(progress.Event{Event: progress.EventProgress, Tag: "v7", State: progress.StateDownloading, BytesDone: 10, BytesTotal: 100})
	if _, err := lw.Write([]byte("a log line\n")); err != nil {
		t.Fatal(err)
	}
	r.Report(progress.Event{Event: progress.EventDone, Tag: "v7", BytesDone: 100, BytesTotal: 100})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "v7") || !strings.Contains(out, "a log line") {
		t.Fatalf("bar output %q lacks tag or log line", out)
	}
}
