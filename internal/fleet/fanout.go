package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// HostError is one host's failure.
type HostError struct {
	Host Host
	Err  error
}

func (e *HostError) Error() string { return e.Host.Spec + ": " + e.Err.Error() }
func (e *HostError) Unwrap() error { return e.Err }

// Each calls fn for every host, at most limit at a time, and returns the
// failures joined with errors.Join (nil when every host succeeded). Every
// host gets its turn even when others fail; a cancelled ctx fails the hosts
// not yet started.
func Each(ctx context.Context, hosts []Host, limit int, fn func(ctx context.Context, h Host) error) error {
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, h := range hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = &HostError{Host: h, Err: ctx.Err()}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, h); err != nil {
				errs[i] = &HostError{Host: h, Err: err}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// HostErrors flattens an error made by Each (or joins and wraps of such
// errors) into its per-host failures, one per host (the first seen),
// sorted by host; other errors are returned under an empty host.
func HostErrors(err error) []*HostError {
	var out []*HostError
	seen := make(map[string]bool)
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case nil:
		case *HostError:
			if !seen[x.Host.Spec] || x.Host.Spec == "" {
				seen[x.Host.Spec] = true
				out = append(out, x)
			}
		case interface{ Unwrap() []error }:
			for _, y := range x.Unwrap() {
				walk(y)
			}
		case *FailedHostsError:
			walk(x.Err)
		default:
			out = append(out, &HostError{Err: e})
		}
	}
	walk(err)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Host.Spec < out[j].Host.Spec })
	return out
}

// FailedHostsError summarises per-host failures for the exit message.
type FailedHostsError struct {
	Failed, Total int
	Err           error // the joined per-host errors
}

// NewFailedHostsError wraps per-host failures (as made by Each) out of
// total hosts.
func NewFailedHostsError(err error, total int) *FailedHostsError {
	n := 0
	for _, he := range HostErrors(err) {
		if he.Host.Spec != "" {
			n++
		}
	}
	return &FailedHostsError{Failed: n, Total: total, Err: err}
}

func (e *FailedHostsError) Error() string {
	for _, he := range HostErrors(e.Err) {
		if he.Host.Spec == "" {
			return he.Err.Error()
		}
	}
	return fmt.Sprintf("%d of %d hosts failed", e.Failed, e.Total)
}
func (e *FailedHostsError) Unwrap() error { return e.Err }
