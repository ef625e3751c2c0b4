package progress

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testenv"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Event
		bad  bool
	}{
		{"progress", `{"event":"progress","tag":"v1","state":"downloading","bytes_done":5,"bytes_total":10,"down_rate":3,"up_rate":1,"peers":2,"downloaded":5,"uploaded":1}`,
			Event{Event: EventProgress, Tag: "v1", State: StateDownloading, BytesDone: 5, BytesTotal: 10, DownRate: 3, UpRate: 1, Peers: 2, Downloaded: 5, Uploaded: 1}, false},
		{"done", `{"event":"done","tag":"v1","state":"seeding","bytes_done":10,"bytes_total":10,"path":"/srv/app/v1"}`,
			Event{Event: EventDone, Tag: "v1", State: StateSeeding, BytesDone: 10, BytesTotal: 10, Path: "/srv/app/v1"}, false},
		{"error", `{"event":"error","tag":"v1","message":"destination exists"}`,
			Event{Event: EventError, Tag: "v1", Message: "destination exists"}, false},
		{"spaces after colons", `{"event": "done", "tag": "v1"}`, Event{Event: EventDone, Tag: "v1"}, false},
		{"unknown fields", `{"event":"done","tag":"v1","later":true}`, Event{Event: EventDone, Tag: "v1"}, false},
		{"log line", `time=2026-01-01 level=INFO msg="seeding"`, Event{}, true},
		{"unknown event", `{"event":"paused"}`, Event{}, true},
		{"no event", `{"tag":"v1"}`, Event{}, true},
		{"a done inside a message", `{"event":"progress","message":"\"event\": \"done\""}`, Event{Event: EventProgress, Message: `"event": "done"`}, false},
		{"wrong type", `{"event":"done","bytes_done":"ten"}`, Event{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if tt.bad {
				if !errors.Is(err, ErrNotEvent) {
					t.Fatalf("Decode(%s) = %+v, %v; want ErrNotEvent", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Decode(%s) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFinal(t *testing.T) {
	for ev, want := range map[string]bool{EventProgress: false, EventDone: true, EventError: true} {
		if got := (Event{Event: ev}).Final(); got != want {
			t.Errorf("Event{%q}.Final() = %v, want %v", ev, got, want)
		}
	}
}

// TestReader reads a stream as a detached peer leaves it: a stray log line
// between events, and a done event that ends it.
func TestReader(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "peer.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(data))
	var got []string
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Event+"/"+ev.State)
	}
	want := []string{"progress/checking", "progress/downloading", "progress/downloading", "done/seeding"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// FuzzDecode checks that what Decode accepts encodes and decodes back to
// the same event.
func FuzzDecode(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "peer.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := Decode(line)
		if err != nil {
			return
		}
		b, err := Encode(ev)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", ev, err)
		}
		back, err := Decode(b)
		if err != nil || back != ev {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", ev, back, err)
		}
	})
}

// TestFollow tails a stream as a peer writes it: events are copied as they
// come, a half-written line waits for its end, and the final event ends it
// while the peer still runs.
func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var alive atomic.Bool
	alive.Store(true)
	var out testenv.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), path, alive.Load, time.Millisecond, &out)
	}()
	write := func(s string) {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"event":"progress","tag":"v1","bytes_done":1}` + "\n")
	write("not an event\n")
	write(`{"event":"progress","tag":"v1",`)
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 1 })
	write(`"bytes_done":2}` + "\n")
	write(`{"event":"done","tag":"v1","bytes_done":3}` + "\n")
	if err := <-done; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	var got []int64
	r := NewReader(strings.NewReader(out.String()))
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, ev.BytesDone)
	}
	if !reflect.DeepEqual(got, []int64{1, 2, 3}) {
		t.Fatalf("followed bytes_done %v, want [1 2 3]; output:\n%s", got, out.String())
	}
}

// TestFollowExited: a peer that exits without a final event ends Follow
// with ErrExited, after what it wrote last, even without a newline.
func TestFollowExited(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       error
	}{
		{"no final event", `{"event":"progress","tag":"v1"}` + "\n", ErrExited},
		{"an error without a newline", `{"event":"error","tag":"v1","message":"disk full"}`, nil},
		{"nothing", "", ErrExited},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peer.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			var out testenv.Buffer
			err := Follow(context.Background(), path, func() bool { return false }, time.Millisecond, &out)
			if !errors.Is(err, tt.want) && err != tt.want {
				t.Fatalf("Follow = %v, want %v", err, tt.want)
			}
			if tt.data != "" && !strings.Contains(out.String(), `"tag":"v1"`) {
				t.Fatalf("Follow wrote %q, want the event", out.String())
			}
		})
	}
	if err := Follow(context.Background(), filepath.Join(t.TempDir(), "missing"), func() bool { return true }, 0, io.Discard); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Follow of a missing file = %v, want ErrNotExist", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 5000 && !cond(); i++ {
		time.Sleep(time.Millisecond)
	}
	if !cond() {
		t.Fatal("condition not reached")
	}
}
