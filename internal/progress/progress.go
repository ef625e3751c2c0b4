// Package progress is the contract of `murder peer --progress json`: one
// JSON object per line, each an Event. The peer writes it (internal/agent)
// and the deploy reads it (internal/deploy, from the peer's status stream,
// --status-fd), all through these types.
package progress

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Event names.
const (
	EventProgress = "progress" // a periodic report
	EventDone     = "done"     // the files are in place; the last event
	EventError    = "error"    // the peer failed (Message says why); the last event
)

// States carried by events, in the order a peer passes them.
const (
	StateChecking    = "checking"    // re-hashing what is already on disk
	StateDownloading = "downloading" // fetching missing pieces
	StateDownloaded  = "downloaded"  // every piece verified, before placing
	StatePlacing     = "placing"     // the rest of the sha256 check and extraction, then the rename
	StateSeeding     = "seeding"     // files in place, serving others
	StateDone        = "done"        // files in place, and the peer does not seed on
)

// Event is one line of the stream. Rates are in bytes per second.
type Event struct {
	Event      string `json:"event"`
	Tag        string `json:"tag"`
	State      string `json:"state,omitempty"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	DownRate   int64  `json:"down_rate"`
	UpRate     int64  `json:"up_rate"`
	Peers      int    `json:"peers"`
	Downloaded int64  `json:"downloaded"` // payload bytes received this run
	Uploaded   int64  `json:"uploaded"`   // payload bytes sent this run
	Path       string `json:"path,omitempty"`
	Message    string `json:"message,omitempty"`
}

// Final reports whether ev ends the stream (done or error).
func (ev Event) Final() bool { return ev.Event == EventDone || ev.Event == EventError }

// ErrNotEvent is wrapped by Decode's errors.
var ErrNotEvent = errors.New("progress: not an event")

// MaxLine is the longest line Reader accepts.
const MaxLine = 1 << 20

// Encode returns ev as one line, newline included.
func Encode(ev Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode parses one line. A line that is not a JSON object, or has no
// known event name, is an error wrapping ErrNotEvent.
func Decode(line []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrNotEvent, err)
	}
	switch ev.Event {
	case EventProgress, EventDone, EventError:
		return ev, nil
	}
	return Event{}, fmt.Errorf("%w: event %q", ErrNotEvent, ev.Event)
}

// Reader reads the events of a stream, skipping lines that are not events
// (a log line that went to the wrong place must not end a deploy).
type Reader struct {
	sc *bufio.Scanner
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	return &Reader{sc: sc}
}

// Next returns the next event, or io.EOF at the end of the stream.
func (r *Reader) Next() (Event, error) {
	for r.sc.Scan() {
		if ev, err := Decode(r.sc.Bytes()); err == nil {
			return ev, nil
		}
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, fmt.Errorf("progress: %w", err)
	}
	return Event{}, io.EOF
}
