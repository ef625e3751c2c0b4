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

// HostErrors flattens an error made by Each (or joins of them) into its
// per-host failures, sorted by host; other errors are returned under an
// empty host.
func HostErrors(err error) []*HostError {
	var out []*HostError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		var he *HostError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &he) {
			out = append(out, he)
			return
		}
		out = append(out, &HostError{Err: e})
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

func (e *FailedHostsError) Error() string {
	return fmt.Sprintf("%d of %d hosts failed", e.Failed, e.Total)
}
func (e *FailedHostsError) Unwrap() error { return e.Err }
