package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/tracker"
)

// StartSeeding starts `murder seed` for the tag on the seeder unless it is
// running, and waits until the tracker lists it as a complete peer.
func (f *Fleet) StartSeeding(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if f.dryRun("start-seeding", []fleet.Host{f.inv.Seeder}, func(h fleet.Host) string {
		return f.bin() + " " + shellWords(f.seedCommand(tag, dryAnnounce(h)).args()) + " (detached, pid in " + f.dryTemp(seedPid(tag)) + "; unless it runs), then wait until the tracker lists it"
	}) {
		return nil
	}
	mi, err := f.loadTorrent(tag)
	if err != nil {
		return err
	}
	f.header("start-seeding", 1)
	tc, err := f.trackersClient(ctx)
	if err != nil {
		return err
	}
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script(f.startSeedLines(tag, c)...))
		if err != nil {
			return fmt.Errorf("deploy: start seeding: %w", err)
		}
		return f.waitSeeder(ctx, c, tc, tag, mi, strings.TrimSpace(out))
	})
}

// startSeedLines are the shell lines that start the seeder of tag on c
// unless it runs, printing "running" or "started".
func (f *Fleet) startSeedLines(tag string, c *fleet.Conn) []string {
	return []string{
		"if murder_alive " + seedPid(tag) + " seed >/dev/null; then echo running; exit 0; fi",
		"murder_start " + seedPid(tag) + " " + seedLog(tag) + " " + seedLog(tag) + " " + shellWords(f.seedCommand(tag, announceIP(f.inv.Seeder, c)).args()),
		"echo started",
	}
}

// seedCommand is the command line of the seeder of tag, announcing ip.
func (f *Fleet) seedCommand(tag, ip string) seedCommand {
	return seedCommand{
		Torrent:       f.remoteTemp(torrentName(tag)),
		IP:            ip,
		MaxUploadRate: f.inv.MaxUploadRate,
		MetricsListen: seederMetricsListen(f.inv.MetricsPort),
		AllowFrom:     f.inv.Trust.AllowFrom,
		Datacenter:    f.inv.Seeder.Datacenter,
		Rack:          f.inv.Seeder.Rack,
	}
}

// waitSeeder waits until the trackers list the seeder of tag on c as a
// complete peer, checking every so often that it still runs. state is
// what starting it said: "started" or "running".
func (f *Fleet) waitSeeder(ctx context.Context, c *fleet.Conn, tc *tracker.Client, tag string, mi *metainfo.MetaInfo, state string) error {
	hash := mi.InfoHash()
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; ; i++ {
		st, err := tc.Scrape(ctx, hash)
		if err == nil && st[hash].Complete > 0 {
			break
		}
		if i%aliveEvery == aliveEvery-1 {
			alive, _ := c.Output(ctx, f.script("murder_alive "+seedPid(tag)+" seed >/dev/null && echo alive || echo dead"))
			if strings.TrimSpace(alive) == "dead" {
				return fmt.Errorf("deploy: seeder exited: %s", f.remoteTail(ctx, c, seedLog(tag)))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deploy: seeder has not announced to the tracker after 2 minutes (scrape: %v); log: %s", err, f.remoteTail(ctx, c, seedLog(tag)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	f.say("  seeding %s (%s, info hash %s), %s", tag, bytesize.Format(mi.Info.TotalLength()), hash, map[string]string{"running": "already running", "started": "started"}[state])
	return nil
}

// StopSeeding stops the seeder of the tag; stopping one that is not
// running succeeds.
func (f *Fleet) StopSeeding(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if f.dryRun("stop-seeding", []fleet.Host{f.inv.Seeder}, func(fleet.Host) string { return f.dryStop("seed", f.dryTemp(seedPid(tag))) }) {
		return nil
	}
	f.header("stop-seeding", 1)
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script("murder_stop "+seedPid(tag)+" seed"))
		if err != nil {
			return fmt.Errorf("deploy: stop seeding: %w", err)
		}
		f.say("  %s", strings.TrimSpace(out))
		return nil
	})
}
