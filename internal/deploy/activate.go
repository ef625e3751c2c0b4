package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/release"
)

// ActivateOptions configure the switch of DESTINATION/current to a tag on
// the peers (see murder activate, which each host runs).
type ActivateOptions struct {
	Destination  string   // the peers' destination path (required)
	KeepReleases int      // releases to keep on each host; 0 = all
	Shared       []string // paths linked to DESTINATION/shared/PATH
	// BeforeActivate and AfterActivate are shell commands run on each
	// host in the release's directory.
	BeforeActivate, AfterActivate string
	// MinHosts is how many hosts must have the tag in place before any is
	// switched; 0 means every host.
	MinHosts int
	// Canary is the number of hosts switched first, on their own; 0 means
	// no canary wave.
	Canary int
	// Batch is the number of hosts switched at a time after the canary
	// wave; 0 means all of them at once.
	Batch int
}

// activateArgs is the command line of `murder activate` for opt.
func activateArgs(tag string, opt ActivateOptions) []string {
	a := []string{"activate", "--destination-path", opt.Destination, "--tag", tag, "--json"}
	if opt.KeepReleases > 0 {
		a = append(a, "--keep-releases", strconv.Itoa(opt.KeepReleases))
	}
	for _, s := range opt.Shared {
		a = append(a, "--shared", s)
	}
	if opt.BeforeActivate != "" {
		a = append(a, "--before-activate", opt.BeforeActivate)
	}
	if opt.AfterActivate != "" {
		a = append(a, "--after-activate", opt.AfterActivate)
	}
	return a
}

// waves splits n hosts into the sizes of the waves: the canary wave, then
// batch at a time.
func waves(n, canary, batch int) []int {
	var out []int
	if canary > 0 && n > 0 {
		c := min(canary, n)
		out = append(out, c)
		n -= c
	}
	for n > 0 {
		b := n
		if batch > 0 {
			b = min(batch, n)
		}
		out = append(out, b)
		n -= b
	}
	return out
}

// rollout runs wave after wave over names, stopping at the first wave in
// which any host failed. It returns the names no wave reached.
func rollout(ctx context.Context, names []string, canary, batch int, say func(string, ...any),
	run func(ctx context.Context, wave []string) error) (rest []string, err error) {
	sizes := waves(len(names), canary, batch)
	i := 0
	for w, size := range sizes {
		wave := names[i : i+size]
		i += size
		if len(sizes) > 1 {
			kind := "wave"
			if w == 0 && canary > 0 {
				kind = "canary wave"
			}
			say("  %s %d/%d: %s", kind, w+1, len(sizes), strings.Join(wave, ", "))
		}
		if err := run(ctx, wave); err != nil {
			return names[i:], errors.Join(err, fmt.Errorf("deploy: activation stopped after wave %d of %d failed", w+1, len(sizes)))
		}
		if err := ctx.Err(); err != nil {
			return names[i:], err
		}
	}
	return nil, nil
}

// Activate switches DESTINATION/current to tag on the selected peers, in
// waves, once enough of them have the tag in place (see ActivateOptions).
// Hosts a stopped rollout did not reach stay on their previous release
// and are reported as failed.
func (f *Fleet) Activate(ctx context.Context, tag string, opt ActivateOptions) error {
	hosts := f.Pick(f.inv.Peers)
	return f.activate(ctx, tag, opt, hosts, len(hosts))
}

// activate switches hosts, out of total hosts the deploy is for (those
// missing from hosts failed before).
func (f *Fleet) activate(ctx context.Context, tag string, opt ActivateOptions, hosts []fleet.Host, total int) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if !strings.HasPrefix(opt.Destination, "/") {
		return fmt.Errorf("deploy: --destination-path must be absolute on the peers, got %q", opt.Destination)
	}
	args := activateArgs(tag, opt)
	if f.dryRun("activate", hosts, func(fleet.Host) string { return f.bin() + " " + shellWords(args) },
		fmt.Sprintf("waves: %v", waves(len(hosts), opt.Canary, opt.Batch))) {
		return nil
	}
	f.header("activate", len(hosts))
	// Only hosts with the tag in place take part.
	rel := strings.TrimSuffix(opt.Destination, "/") + "/" + tag
	var mu sync.Mutex
	ready := map[string]bool{}
	checkErr := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		if _, err := c.Output(ctx, "test -d "+fleet.Quote(rel)); err != nil {
			return fmt.Errorf("deploy: %s is not in place on this host (run the peer step first): %w", rel, err)
		}
		mu.Lock()
		ready[c.Host.Spec] = true
		mu.Unlock()
		return nil
	})
	var names []string
	byName := map[string]fleet.Host{}
	for _, h := range hosts {
		if ready[h.Spec] {
			names = append(names, h.Spec)
			byName[h.Spec] = h
		}
	}
	if err := enoughHosts(len(names), total, opt.MinHosts, tag); err != nil {
		f.notActivated(names, err.Error())
		return errors.Join(checkErr, err)
	}
	rest, err := rollout(ctx, names, opt.Canary, opt.Batch, f.say, func(ctx context.Context, wave []string) error {
		var hs []fleet.Host
		for _, n := range wave {
			hs = append(hs, byName[n])
		}
		return f.each(ctx, hs, func(ctx context.Context, c *fleet.Conn) error {
			err := f.activateOne(ctx, c, tag, args)
			if err != nil {
				f.say("  %-24s FAILED: %s", c.Host.Spec, errString(err))
			}
			return err
		})
	})
	if err != nil {
		f.notActivated(rest, "not activated: "+stopReason(err)+"; still on the previous release")
	}
	n := len(names) - len(rest)
	f.say("  %s is active on %d of %d hosts", tag, f.rec.okOf(names[:n]), total)
	if err != nil {
		return errors.Join(checkErr, err)
	}
	return checkErr
}

// stopReason is why a rollout stopped, without the hosts' own errors.
func stopReason(err error) string {
	if e := firstNonHost(err); e != nil {
		return strings.TrimPrefix(e.Error(), "deploy: ")
	}
	return strings.TrimPrefix(err.Error(), "deploy: ")
}

// enoughHosts checks that ready of total hosts have the tag, as MinHosts
// asks.
func enoughHosts(ready, total, minHosts int, tag string) error {
	need := total
	if minHosts > 0 {
		need = min(minHosts, total)
	}
	if ready < need || ready == 0 {
		return fmt.Errorf("deploy: %d of %d hosts have %s in place, %d needed (--min-hosts): nothing was activated", ready, total, tag, need)
	}
	return nil
}

// notActivated records hosts that a stopped activation left alone.
func (f *Fleet) notActivated(names []string, why string) {
	for _, n := range names {
		f.rec.add(n, 0, 0, errors.New(why))
	}
}

// activateOne runs murder activate on a host; the hooks' output is kept in
// the local temp path, one file per host, and shown after the host's line.
func (f *Fleet) activateOne(ctx context.Context, c *fleet.Conn, tag string, args []string) error {
	var stdout, stderr bytes.Buffer
	err := c.Run(ctx, f.script(`"$BIN" `+shellWords(args)), nil, &stdout, &stderr)
	logPath := ""
	if stderr.Len() > 0 {
		logPath = f.keepHookOutput(tag, c.Host.Spec, stderr.Bytes())
	}
	if err != nil {
		var ee *fleet.ExitError
		if errors.As(err, &ee) && ee.Stderr != "" {
			err = errors.New(ee.Stderr)
		}
		if logPath != "" {
			err = fmt.Errorf("%w (output: %s)", err, logPath)
		}
		return err
	}
	res, perr := lastJSON[release.Result](stdout.Bytes())
	if perr != nil {
		return fmt.Errorf("deploy: murder activate: %w (is the remote murder current? run distribute-files)", perr)
	}
	switch {
	case res.Unchanged:
		f.say("  %-24s %s was already active", c.Host.Spec, res.Tag)
	case res.Previous != "":
		f.say("  %-24s activated %s (previous: %s)", c.Host.Spec, res.Tag, res.Previous)
	default:
		f.say("  %-24s activated %s", c.Host.Spec, res.Tag)
	}
	if res.PruneError != "" {
		f.say("  %-24s could not remove old releases: %s", c.Host.Spec, res.PruneError)
	}
	return nil
}

// keepHookOutput writes a host's hook output to
// LOCAL_TEMP/murder-TAG-hooks/HOST.log and returns the path ("" if it
// could not).
func (f *Fleet) keepHookOutput(tag, host string, out []byte) string {
	dir := filepath.Join(f.cfg.LocalTempPath, "murder-"+tag+"-hooks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	// The local temp path may be shared: the log is written through a
	// temporary file and a rename, never through a link planted there.
	p := filepath.Join(dir, strings.ReplaceAll(host, "/", "_")+".log")
	if err := writeFileAtomic(p, out); err != nil {
		return ""
	}
	return p
}

// lastJSON decodes the last non-empty line of out.
func lastJSON[T any](out []byte) (*T, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var v T
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		return nil, fmt.Errorf("unexpected output %q", oneLine(lines[len(lines)-1]))
	}
	return &v, nil
}

// Rollback points DESTINATION/current back at the previous release on the
// selected peers (murder rollback on each host).
func (f *Fleet) Rollback(ctx context.Context, dest string) error {
	if !strings.HasPrefix(dest, "/") {
		return fmt.Errorf("deploy: --destination-path must be absolute on the peers, got %q", dest)
	}
	hosts := f.Pick(f.inv.Peers)
	args := []string{"rollback", "--destination-path", dest, "--json"}
	if f.dryRun("rollback", hosts, func(fleet.Host) string { return f.bin() + " " + shellWords(args) }) {
		return nil
	}
	f.header("rollback", len(hosts))
	return f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script(`"$BIN" `+shellWords(args)))
		if err != nil {
			var ee *fleet.ExitError
			if errors.As(err, &ee) && ee.Stderr != "" {
				return errors.New(ee.Stderr)
			}
			return err
		}
		res, err := lastJSON[release.Result]([]byte(out))
		if err != nil {
			return fmt.Errorf("deploy: murder rollback: %w", err)
		}
		f.say("  %-24s rolled back from %s to %s", c.Host.Spec, res.Previous, res.Tag)
		return nil
	})
}
