package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/murder-deploy/murder/internal/fleet"
)

// stopAll stops every daemon of a kind on hosts through the pid files
// TEMP/murder-KIND-*.pid.
func (f *Fleet) stopAll(ctx context.Context, task, kind string, hosts []fleet.Host) error {
	if f.dryRun(task, hosts, func(fleet.Host) string {
		return f.dryStop(kind, f.dryTemp(`"$T"/murder-`+kind+`-*.pid`)+" (each)")
	}) {
		return nil
	}
	f.header(task, len(hosts))
	var mu sync.Mutex
	stopped := 0
	err := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script(
			`for pf in "$T"/murder-`+kind+`-*.pid; do [ -e "$pf" ] || continue; murder_stop "$pf" `+kind+`; done`,
		))
		if err != nil {
			return fmt.Errorf("deploy: %s: %w", task, err)
		}
		n := strings.Count(out, "stopped "+kind)
		mu.Lock()
		stopped += n
		mu.Unlock()
		return nil
	})
	f.say("  stopped %d %s process(es)", stopped, kind)
	return err
}

// StopAllSeeding stops every seeder that murder started on the seeder host.
func (f *Fleet) StopAllSeeding(ctx context.Context) error {
	return f.stopAll(ctx, "stop-all-seeding", "seed", []fleet.Host{f.inv.Seeder})
}

// StopAllPeering stops every peer that murder started on the peers.
func (f *Fleet) StopAllPeering(ctx context.Context) error {
	return f.stopAll(ctx, "stop-all-peering", "peer", f.Pick(f.inv.Peers))
}

// StopPeering stops the peers of the tag (they seed on after finishing);
// stopping what is not running succeeds.
func (f *Fleet) StopPeering(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	peers := f.Pick(f.inv.Peers)
	if f.dryRun("stop-peering", peers, func(fleet.Host) string { return f.dryStop("peer", f.dryTemp(peerPid(tag))) }) {
		return nil
	}
	f.header("stop-peering", len(peers))
	var mu sync.Mutex
	stopped := 0
	err := f.each(ctx, peers, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script("murder_stop "+peerPid(tag)+" peer"))
		if err != nil {
			return fmt.Errorf("deploy: stop peering: %w", err)
		}
		if strings.HasPrefix(out, "stopped") {
			mu.Lock()
			stopped++
			mu.Unlock()
		}
		return nil
	})
	f.say("  stopped %d peer process(es)", stopped)
	return err
}

// CleanTempFiles removes the tag's artifact, .torrent and the pid, log and
// progress files of daemons that are no longer running, on every host, and
// the local copy of the .torrent.
func (f *Fleet) CleanTempFiles(ctx context.Context, tag string) error {
	return f.clean(ctx, tag, f.Pick(f.inv.All()))
}

func (f *Fleet) clean(ctx context.Context, tag string, hosts []fleet.Host) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if f.dryRun("clean-temp-files", hosts, func(fleet.Host) string {
		return "T=" + fleet.Quote(f.inv.TempPath) + "; " + strings.Join(cleanLines(tag), "; ")
	}, "(murder_alive checks that the pid file names a running murder of that kind)", "then remove "+f.localTorrent(tag)+" on this machine") {
		return nil
	}
	f.header("clean-temp-files", len(hosts))
	err := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		return f.cleanHost(ctx, c, tag)
	})
	if rerr := os.Remove(f.localTorrent(tag)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("deploy: %w", rerr))
	}
	f.say("  removed %s's temp files", tag)
	return err
}

// cleanLines remove the tag's artifact and .torrent, and the pid, log and
// progress files of the daemons that no longer run.
func cleanLines(tag string) []string {
	q := fleet.Quote(tag)
	return []string{
		`rm -rf "$T"/` + q + `.tgz "$T"/` + q + `.tgz.* "$T"/` + q + `.tar.zst "$T"/` + q + `.tar.zst.* "$T"/` + q + `.tar "$T"/` + q + `.tar.*`,
		`murder_alive ` + seedPid(tag) + ` seed >/dev/null || rm -f ` + seedPid(tag) + ` ` + seedLog(tag),
		`murder_alive ` + peerPid(tag) + ` peer >/dev/null || rm -f ` + peerPid(tag) + ` ` + peerLog(tag) + ` ` + peerJSON(tag) + ` ` + peerStatus(tag) + `.*`,
		`murder_alive ` + trackerPid() + ` tracker >/dev/null || rm -f ` + trackerPid() + ` ` + trackerLog(),
	}
}

// cleanHost cleans the tag's temp files on one host.
func (f *Fleet) cleanHost(ctx context.Context, c *fleet.Conn, tag string) error {
	if _, err := c.Output(ctx, f.script(cleanLines(tag)...)); err != nil {
		return fmt.Errorf("deploy: clean temp files: %w", err)
	}
	return nil
}
