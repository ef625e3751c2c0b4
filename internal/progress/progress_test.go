package progress

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
