package deploy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
)

// peerEvent is one line of `murder peer --progress json`.
type peerEvent struct {
	Event      string  `json:"event"` // progress, done or error
	Tag        string  `json:"tag"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"`
	DownRate   float64 `json:"down_rate"`
	UpRate     float64 `json:"up_rate"`
	Peers      int     `json:"peers"`
	Path       string  `json:"path"`
	Message    string  `json:"message"`
}

// maxHostLines is the largest fleet for which every finished host gets a
// line of its own.
const maxHostLines = 50

type hostState struct {
	done, total int64
	rate        float64
	finished    bool
	failed      bool
}

// progress aggregates the peers' events into one status line for the
// fleet: hosts done out of total, bytes, aggregate rate and ETA.
type progress struct {
	mu    sync.Mutex
	out   io.Writer
	live  bool // redraw one line in place (a terminal)
	task  string
	hosts map[string]*hostState
	n     int
	start time.Time
	last  string
	// held keeps every line back until open; pending are the lines kept.
	held    bool
	pending []string
}

func newProgress(out io.Writer, live bool, task string, hosts int) *progress {
	return &progress{out: out, live: live, task: task, hosts: make(map[string]*hostState), n: hosts, start: time.Now()}
}

func (p *progress) state(host string) *hostState {
	s, ok := p.hosts[host]
	if !ok {
		s = &hostState{}
		p.hosts[host] = s
	}
	return s
}

func (p *progress) update(host string, ev peerEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state(host)
	if ev.BytesTotal > 0 {
		s.total = ev.BytesTotal
	}
	s.done, s.rate = ev.BytesDone, ev.DownRate
}

// finish marks a host done (ok) or failed, and prints a line for it when
// the display is not live.
func (p *progress) finish(host string, ok bool, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state(host)
	s.rate = 0
	if ok {
		s.finished = true
		s.done = s.total
	} else {
		s.failed = true
	}
	var line string
	if ok {
		// Large fleets get the status line and the failures only.
		if p.n <= maxHostLines {
			line = fmt.Sprintf("  %-24s done in %s\n", host, roundDur(time.Since(p.start)))
		}
	} else {
		line = fmt.Sprintf("  %-24s FAILED: %s\n", host, msg)
	}
	if p.held {
		p.pending = append(p.pending, line)
		return
	}
	p.clearLocked()
	fmt.Fprint(p.out, line)
	p.drawLocked()
}

// hold keeps every line back until open.
func (p *progress) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
}

// open calls header, then writes the lines held back; times count from
// now. It is safe to call more than once.
func (p *progress) open(header func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.held {
		return
	}
	p.held = false
	p.start = time.Now()
	header()
	for _, l := range p.pending {
		fmt.Fprint(p.out, l)
	}
	p.pending = nil
}

// opened says whether the lines are out.
func (p *progress) opened() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.held
}

func (p *progress) clearLocked() {
	if p.live && p.last != "" {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

func (p *progress) drawLocked() {
	if p.live && p.last != "" {
		p.last = p.line()
		fmt.Fprint(p.out, p.last)
	}
}

func (p *progress) line() string {
	var done, total, totalKnown int64
	var rate float64
	var ok, failed, known int
	for _, s := range p.hosts {
		done += s.done
		if s.total > 0 {
			total += s.total
			totalKnown = s.total
			known++
		}
		rate += s.rate
		if s.finished {
			ok++
		}
		if s.failed {
			failed++
		}
	}
	// Hosts that have not reported yet will move as much as the others.
	total += int64(p.n-known) * totalKnown
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d hosts done", p.task, ok, p.n)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	fmt.Fprintf(&b, " | %s of %s | %s/s", humanBytes(done), humanBytes(total), humanBytes(int64(rate)))
	if rate > 0 && total > done {
		fmt.Fprintf(&b, " | ETA %s", roundDur(time.Duration(float64(total-done)/rate*float64(time.Second))))
	}
	fmt.Fprintf(&b, " | %s", roundDur(time.Since(p.start)))
	return b.String()
}

// run redraws the status line (twice a second on a terminal, every five
// seconds otherwise) until ctx ends.
func (p *progress) run(ctx context.Context) {
	every := 5 * time.Second
	if p.live {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.clearLocked()
			p.last = ""
			p.mu.Unlock()
			return
		case <-t.C:
		}
		p.mu.Lock()
		if p.held {
			p.mu.Unlock()
			continue
		}
		l := p.line()
		if p.live {
			fmt.Fprint(p.out, "\r\033[K"+l)
			p.last = l
		} else if l != p.last {
			fmt.Fprintln(p.out, "  "+l)
			p.last = l
		}
		p.mu.Unlock()
	}
}

// PrintFailures writes a table of the hosts in err (as made by fleet.Each)
// and why they failed. It writes nothing when err is nil.
func PrintFailures(w io.Writer, err error, total int) {
	var he []*fleet.HostError
	for _, e := range fleet.HostErrors(err) {
		if e.Host.Spec != "" {
			he = append(he, e)
		}
	}
	if len(he) == 0 {
		return
	}
	sort.SliceStable(he, func(i, j int) bool { return he[i].Host.Spec < he[j].Host.Spec })
	fmt.Fprintf(w, "\nFAILED HOSTS (%d of %d)\n", len(he), total)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tERROR")
	for _, e := range he {
		fmt.Fprintf(tw, "%s\t%s\n", e.Host.Spec, oneLine(e.Err.Error()))
	}
	tw.Flush()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return ""
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d > time.Minute:
		return d.Round(time.Second)
	case d > time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
