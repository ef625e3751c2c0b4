package deploy

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"
)

// Summary is what a deploy did.
type Summary struct {
	Hosts     int           // peers in the inventory
	Succeeded int           // peers with the files in place
	Bytes     int64         // artifact bytes in place, summed over the peers
	Wall      time.Duration // wall time of the whole deploy
	// FilesInPlace is the time from the start until the last peer that
	// succeeded had its files in place; 0 when none did.
	FilesInPlace time.Duration
	// Steps are the deploy's steps in the order they started; some
	// overlap.
	Steps []Step
	// Datacenters splits the figures by the peers' datacenters; nil when
	// no peer has one.
	Datacenters []DatacenterSummary
}

// DatacenterSummary is what a deploy did in one datacenter.
type DatacenterSummary struct {
	Name      string // "" for the peers of no datacenter
	Hosts     int
	Succeeded int
	Bytes     int64
	// FilesInPlace is the time from the start until the datacenter's last
	// peer that succeeded had its files in place; 0 when none did.
	FilesInPlace time.Duration
}

// Step is one timed step of a deploy.
type Step struct {
	Name  string
	Start time.Duration // since the deploy started
	Took  time.Duration
}

// Throughput is the aggregate rate: bytes placed per second of wall time.
func (s *Summary) Throughput() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Wall.Seconds()
}

// Print writes the summary, with the time of each step when the fleet is
// verbose.
func (s *Summary) Print(f *Fleet) {
	s.print(f.out, "hosts", f.cfg.Verbose)
}

// print writes the summary; what names the peers ("hosts" or "peers").
func (s *Summary) print(w io.Writer, what string, steps bool) {
	fmt.Fprintf(w, "\ndeployed to %d/%d %s: %s in %s, %s/s aggregate\n", s.Succeeded, s.Hosts, what, humanBytes(s.Bytes), roundDur(s.Wall), humanBytes(int64(s.Throughput())))
	if s.Succeeded > 0 {
		fmt.Fprintf(w, "files in place on the last of them after %s; whole run %s\n", roundDur(s.FilesInPlace), roundDur(s.Wall))
	}
	if len(s.Datacenters) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  DATACENTER\tHOSTS\tBYTES\tFILES IN PLACE AFTER")
		for _, d := range s.Datacenters {
			name, last := d.Name, "-"
			if name == "" {
				name = "(none)"
			}
			if d.Succeeded > 0 {
				last = roundDur(d.FilesInPlace).String()
			}
			fmt.Fprintf(tw, "  %s\t%d/%d\t%s\t%s\n", name, d.Succeeded, d.Hosts, humanBytes(d.Bytes), last)
		}
		tw.Flush()
	}
	if !steps || len(s.Steps) == 0 {
		return
	}
	fmt.Fprintln(w, "steps (they overlap where nothing waits for them):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tSTART\tTOOK")
	for _, st := range s.Steps {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.Name, roundDur(st.Start), roundDur(st.Took))
	}
	tw.Flush()
}

// steps records when each step of a run starts and how long it takes; it
// is safe for concurrent use.
type steps struct {
	start time.Time
	mu    sync.Mutex
	steps []Step
}

func newSteps(start time.Time) *steps { return &steps{start: start} }

// begin records that a step starts now and returns the function that ends
// it.
func (s *steps) begin(name string) (end func()) {
	t0 := time.Now()
	s.mu.Lock()
	i := len(s.steps)
	s.steps = append(s.steps, Step{Name: name, Start: t0.Sub(s.start)})
	s.mu.Unlock()
	return func() {
		d := time.Since(t0)
		s.mu.Lock()
		s.steps[i].Took = d
		s.mu.Unlock()
	}
}

func (s *steps) list() []Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Step(nil), s.steps...)
}

// future is a value that is set once and waited for by any number of
// goroutines.
type future[T any] struct {
	done chan struct{}
	v    T     // written once, before done is closed
	err  error // likewise
}

func newFuture[T any]() *future[T] { return &future[T]{done: make(chan struct{})} }

func (f *future[T]) set(v T, err error) {
	f.v, f.err = v, err
	close(f.done)
}

func (f *future[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
