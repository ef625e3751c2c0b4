package deploy

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
)

// Host statuses in a Result.
const (
	StatusOK          = "ok"          // every step on the host succeeded
	StatusFailed      = "failed"      // a step failed, or the run stopped before the host's turn
	StatusUnreachable = "unreachable" // SSH could not connect or log in
)

// HostResult is one host's line in a Result.
type HostResult struct {
	Host    string  `json:"host"`
	Status  string  `json:"status"`
	Error   string  `json:"error"`   // "" when ok
	Seconds float64 `json:"seconds"` // time spent in murder's steps on the host
	Bytes   int64   `json:"bytes"`   // artifact bytes placed on the host
}

// Totals sum a Result's hosts.
type Totals struct {
	Hosts       int     `json:"hosts"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	Unreachable int     `json:"unreachable"`
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"` // wall time of the whole run
}

// Result is what `murder deploy --json` and `murder fleet TASK --json`
// print as the last line of standard output.
type Result struct {
	Task   string       `json:"task"`
	Tag    string       `json:"tag"`
	Hosts  []HostResult `json:"hosts"`
	Totals Totals       `json:"totals"`
	// Error is why the run stopped or could not start; "" when it ran to
	// the end (hosts may still have failed).
	Error string `json:"error,omitempty"`
	// DryRun says that the run only printed what each host would run
	// (--dry-run): Hosts is empty.
	DryRun bool `json:"dry_run,omitempty"`
}

// WriteJSON writes r as one line.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Started reports whether the run reached any host.
func (r *Result) Started() bool {
	for _, h := range r.Hosts {
		if h.Error != errNotReached {
			return true
		}
	}
	return false
}

// errNotReached is the error of a host the run stopped before.
const errNotReached = "not reached: the run stopped before this host's turn"

// unreachableError marks a failure to connect to a host.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// recorder collects what each host's steps did, for the Result.
type recorder struct {
	mu    sync.Mutex // guards hosts
	hosts map[string]*HostResult
}

// add records one step on host: how long it took, the bytes it placed and
// its error. The host's first error is the one reported.
func (r *recorder) add(host string, d time.Duration, bytes int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts == nil {
		r.hosts = make(map[string]*HostResult)
	}
	h, ok := r.hosts[host]
	if !ok {
		h = &HostResult{Host: host, Status: StatusOK}
		r.hosts[host] = h
	}
	h.Seconds += d.Seconds()
	h.Bytes += bytes
	if err == nil || h.Status != StatusOK {
		return
	}
	h.Status = StatusFailed
	var ue *unreachableError
	if errors.As(err, &ue) {
		h.Status = StatusUnreachable
	}
	h.Error = errString(err)
}

// okOf counts the hosts of names whose steps all succeeded.
func (r *recorder) okOf(names []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, name := range names {
		if h, ok := r.hosts[name]; ok && h.Status == StatusOK {
			n++
		}
	}
	return n
}

// result builds a Result over hosts, in their order; a host with no step
// recorded is failed as not reached.
func (r *recorder) result(task, tag string, hosts []string, wall time.Duration, runErr error) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{Task: task, Tag: tag, Hosts: []HostResult{}}
	seen := map[string]bool{}
	for _, name := range hosts {
		if seen[name] {
			continue
		}
		seen[name] = true
		h, ok := r.hosts[name]
		if !ok {
			h = &HostResult{Host: name, Status: StatusFailed, Error: errNotReached}
		}
		res.Hosts = append(res.Hosts, *h)
	}
	// Hosts outside the list (the tracker or seeder of a peer task) that
	// failed are reported too.
	var extra []string
	for name, h := range r.hosts {
		if !seen[name] && h.Status != StatusOK {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		res.Hosts = append(res.Hosts, *r.hosts[name])
	}
	for i := range res.Hosts {
		h := &res.Hosts[i]
		h.Seconds = roundSeconds(h.Seconds)
		res.Totals.Hosts++
		res.Totals.Bytes += h.Bytes
		switch h.Status {
		case StatusOK:
			res.Totals.OK++
		case StatusUnreachable:
			res.Totals.Unreachable++
		default:
			res.Totals.Failed++
		}
	}
	res.Totals.Seconds = roundSeconds(wall.Seconds())
	if runErr != nil {
		if e := firstNonHost(runErr); e != nil {
			res.Error = errString(e)
		}
	}
	return res
}

func specs(hosts []fleet.Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Spec
	}
	return out
}

// roundSeconds keeps milliseconds.
func roundSeconds(s float64) float64 { return math.Round(s*1000) / 1000 }
