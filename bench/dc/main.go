// Command dc benchmarks a deploy across datacenters on a test bed: how many
// copies of the artifact cross each datacenter's WAN link, and how long the
// peers take, with murder's tracker placing peers by datacenter, without it,
// and with aria2.
//
//	go run ./bench/dc -dcs 3 -hosts 6 -lan 100Mbit -wan 10Mbit -size 16MiB
//
// The bed (internal/testbed, needs root) has -dcs datacenters of -hosts
// peer hosts, joined by a router; each datacenter's WAN link to the router
// is capped at -wan each way, each host's link at -lan. The first
// datacenter also holds the tracker host and the seeder host. Each
// contender moves one file of -size bytes (F) from the seeder to every
// peer:
//
//   - murder: murder tracker --topology (the bed's datacenters), murder
//     seed, murder peer on every host;
//   - random: the same without --topology, so peers pick each other at
//     random;
//   - aria2: aria2c seeding and downloading, with murder's tracker without
//     --topology; aria2-topo: the same with --topology.
//
// For each it prints the bytes that entered each remote datacenter over
// its WAN link (the router's counters, Ethernet frames) in units of F, and
// the time of the first, median and last peer as a ratio to F/W, the time
// one copy takes to cross a WAN link at its payload rate.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/murder-deploy/murder/internal/bencode"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/testbed"
	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "dc: %v\n", err)
		os.Exit(1)
	}
}

const (
	trackerPort = "8998"
	peerPort    = "6881"
	artName     = "artifact.bin"
	topoPath    = "/srv/murder/topology.toml"
	// payloadShare is the share of a link's rate left for payload once
	// Ethernet, IP and TCP headers (with timestamps) are paid: 1448/1514.
	payloadShare = 1448.0 / 1514.0
)

type bench struct {
	dcs, hosts int
	lan, wan   int64
	size       int64
	murder     string
	bin        string
	bed        *testbed.Bed
	tracker    *testbed.Host
	seeder     *testbed.Host
	peers      []*testbed.Host
	data       string // inside the seeder
	torrent    string // inside every host
	// scrape is the query of a scrape of the torrent alone (a full
	// scrape is off on murder's tracker by default).
	scrape   string
	trackerP *exec.Cmd
	extra    []string // more murder peer flags
	verbose  bool
}

type result struct {
	done []time.Duration // per peer, sorted
	in   []int64         // bytes into each datacenter over its WAN link
	out0 int64           // bytes out of the first datacenter
}

func run() error {
	fs := flag.NewFlagSet("dc", flag.ContinueOnError)
	dcs := fs.Int("dcs", 3, "number of datacenters")
	hosts := fs.Int("hosts", 6, "peer hosts per datacenter (the first also holds the tracker and the seeder)")
	lanFlag := fs.String("lan", "100Mbit", "link cap of every host, each way (Mbit, Gbit, MiB suffixes; bytes/s without)")
	wanFlag := fs.String("wan", "10Mbit", "cap of each datacenter's WAN link, each way")
	sizeFlag := fs.String("size", "16MiB", "artifact size")
	rounds := fs.Int("rounds", 1, "rounds; each runs every contender once, alternating")
	contenders := fs.String("contenders", "murder,random,aria2", "comma-separated contenders: murder, random, aria2, aria2-topo")
	murderBin := fs.String("murder", "", "murder binary to use (default: go build ./cmd/murder)")
	peerFlags := fs.String("peer-flags", "", "more flags for murder peer, space-separated")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "print each peer as it is done")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	b := &bench{dcs: *dcs, hosts: *hosts, verbose: *verbose, extra: strings.Fields(*peerFlags)}
	var err error
	for _, f := range []struct {
		name string
		s    string
		v    *int64
	}{{"-lan", *lanFlag, &b.lan}, {"-wan", *wanFlag, &b.wan}, {"-size", *sizeFlag, &b.size}} {
		if *f.v, err = bytesize.ParseRate(f.s); err != nil || *f.v <= 0 {
			return fmt.Errorf("bad %s %q", f.name, f.s)
		}
	}
	if b.dcs < 2 || b.hosts < 1 {
		return errors.New("want at least 2 datacenters of 1 host")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if b.bin, err = os.MkdirTemp("", "murder-bench-dc-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.bin)
	if *murderBin != "" {
		data, err := os.ReadFile(*murderBin)
		if err != nil {
			return err
		}
		b.murder = filepath.Join(b.bin, "murder")
		if err := os.WriteFile(b.murder, data, 0o755); err != nil {
			return err
		}
	} else if b.murder, err = testenv.BuildMurder(b.bin); err != nil {
		return err
	}
	hook := "#!/bin/sh\ndate +%s.%N > /tmp/aria2-done\n"
	if err := os.WriteFile(filepath.Join(b.bin, "aria2-done.sh"), []byte(hook), 0o755); err != nil {
		return err
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.bed.Close()

	unit := b.copyTime()
	fmt.Printf("dc: %d datacenters x %d peer hosts, F=%s, LAN %s, WAN %s; F/W=%.2fs (at %.1f%% payload)\n",
		b.dcs, b.hosts, *sizeFlag, *lanFlag, *wanFlag, unit.Seconds(), 100*payloadShare)
	names := strings.Split(*contenders, ",")
	results := map[string][]result{}
	for r := range *rounds {
		order := slices.Clone(names)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			exec.Command("sync").Run()
			time.Sleep(2 * time.Second)
			var res result
			var err error
			switch name {
			case "murder":
				res, err = b.runMurder(ctx, true)
			case "random":
				res, err = b.runMurder(ctx, false)
			case "aria2":
				res, err = b.runAria2(ctx, false)
			case "aria2-topo":
				res, err = b.runAria2(ctx, true)
			default:
				return fmt.Errorf("unknown contender %q", name)
			}
			b.clean()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Printf("  round %d %-10s %s\n", r+1, name, b.line(res, unit))
			results[name] = append(results[name], res)
		}
	}
	fmt.Printf("\n%-10s %s\n", "", b.header())
	for _, name := range names {
		rs := results[name]
		fmt.Printf("%-10s %s\n", name, b.line(medianResult(rs), unit))
	}
	return nil
}

// copyTime is F/W: one copy over a WAN link at its payload rate.
func (b *bench) copyTime() time.Duration {
	return time.Duration(float64(b.size) / (float64(b.wan) * payloadShare) * float64(time.Second))
}

func (b *bench) header() string {
	var sb strings.Builder
	for i := 1; i < b.dcs; i++ {
		fmt.Fprintf(&sb, "  into %-5s", b.bed.DatacenterName(i))
	}
	fmt.Fprintf(&sb, "  out of %-4s", b.bed.DatacenterName(0))
	sb.WriteString("   first/(F/W) median/(F/W) last/(F/W)    first   median     last")
	return sb.String()
}

func (b *bench) line(r result, unit time.Duration) string {
	var sb strings.Builder
	for i := 1; i < b.dcs; i++ {
		fmt.Fprintf(&sb, "  %8.2f F", float64(r.in[i])/float64(b.size))
	}
	fmt.Fprintf(&sb, "  %9.2f F", float64(r.out0)/float64(b.size))
	f, m, l := r.done[0], r.done[len(r.done)/2], r.done[len(r.done)-1]
	fmt.Fprintf(&sb, "   %11.2f %12.2f %10.2f  %6.2fs  %6.2fs  %6.2fs",
		f.Seconds()/unit.Seconds(), m.Seconds()/unit.Seconds(), l.Seconds()/unit.Seconds(), f.Seconds(), m.Seconds(), l.Seconds())
	return sb.String()
}

// medianResult takes the median of each figure over rounds (the mean of
// the middle two for an even number of rounds).
func medianResult(rs []result) result {
	out := result{done: make([]time.Duration, len(rs[0].done)), in: make([]int64, len(rs[0].in))}
	for i := range out.done {
		var v []int64
		for _, r := range rs {
			v = append(v, int64(r.done[i]))
		}
		out.done[i] = time.Duration(median(v))
	}
	for i := range out.in {
		var v []int64
		for _, r := range rs {
			v = append(v, r.in[i])
		}
		out.in[i] = median(v)
	}
	var v []int64
	for _, r := range rs {
		v = append(v, r.out0)
	}
	out.out0 = median(v)
	return out
}

func median(v []int64) int64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[n/2]
}

func (b *bench) setup(ctx context.Context) error {
	var dcs []testbed.Datacenter
	for i := range b.dcs {
		n := b.hosts
		if i == 0 {
			n += 2
		}
		dcs = append(dcs, testbed.Datacenter{Name: fmt.Sprintf("dc%d", i), Hosts: n, WAN: b.wan})
	}
	bed, err := testbed.New(ctx, testbed.Config{Datacenters: dcs, Link: testbed.Link{Up: b.lan, Down: b.lan}, Share: []string{b.bin}})
	if err != nil {
		return err
	}
	b.bed = bed
	b.tracker, b.seeder = bed.Host(0), bed.Host(1)
	b.peers = bed.Hosts()[2:]
	if err := b.tracker.SetLink(ctx, testbed.Link{}); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.tracker.Path(topoPath)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(b.tracker.Path(topoPath), []byte(bed.Topology()), 0o644); err != nil {
		return err
	}
	src := "/srv/murder/src/" + artName
	if err := os.MkdirAll(filepath.Dir(b.seeder.Path(src)), 0o755); err != nil {
		return err
	}
	f, err := os.Create(b.seeder.Path(src))
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, b.size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	out, err := b.seeder.Run(ctx, b.murder, "create", "--tag", "bench", "--path-is-file", "--files-path", src,
		"--temp-path", "/srv/murder/out", "--tracker", b.trackerAddr())
	if err != nil {
		return err
	}
	fmt.Print(string(out))
	b.data = "/srv/murder/out/" + artName
	b.torrent = b.data + ".torrent"
	tor, err := os.ReadFile(b.seeder.Path(b.torrent))
	if err != nil {
		return err
	}
	mi, err := metainfo.Parse(tor)
	if err != nil {
		return err
	}
	b.scrape = tracker.ScrapeQuery(mi.InfoHash())
	for _, h := range b.peers {
		if err := os.MkdirAll(filepath.Dir(h.Path(b.torrent)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(h.Path(b.torrent), tor, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) trackerAddr() string { return net.JoinHostPort(b.tracker.Addr().String(), trackerPort) }

// startTracker (re)starts murder tracker, with the bed's topology or
// without, so that no contender sees another's peers.
func (b *bench) startTracker(ctx context.Context, topology bool) error {
	if b.trackerP != nil {
		testbed.Stop(b.trackerP)
	}
	args := []string{"tracker", "--listen", b.trackerAddr(), "--interval", "5s"}
	if topology {
		args = append(args, "--topology", topoPath)
	}
	cmd := b.tracker.Command(ctx, b.murder, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	b.trackerP = cmd
	return waitFor(ctx, 10*time.Second, func() bool {
		c, err := b.seeder.DialContext(ctx, "tcp", b.trackerAddr())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// seeded waits until the tracker counts a seeder.
func (b *bench) seeded(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: b.seeder.DialContext, DisableKeepAlives: true}}
	return waitFor(ctx, 30*time.Second, func() bool {
		resp, err := client.Get("http://" + b.trackerAddr() + "/scrape?" + b.scrape)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var v struct {
			Files map[string]struct {
				Complete int64 `bencode:"complete"`
			} `bencode:"files"`
		}
		if bencode.Unmarshal(body, &v) != nil {
			return false
		}
		for _, f := range v.Files {
			if f.Complete > 0 {
				return true
			}
		}
		return false
	})
}

// wanIn reads the bytes that have entered each datacenter so far, and
// the bytes that have left the first one, last.
func (b *bench) wanIn(ctx context.Context) ([]int64, error) {
	var in []int64
	var out0 int64
	for i := range b.dcs {
		w, err := b.bed.WAN(ctx, i)
		if err != nil {
			return nil, err
		}
		in = append(in, w.In)
		if i == 0 {
			out0 = w.Out
		}
	}
	return append(in, out0), nil
}

func (b *bench) finish(ctx context.Context, res *result, in0 []int64) error {
	in1, err := b.wanIn(ctx)
	if err != nil {
		return err
	}
	for i := range b.dcs {
		res.in = append(res.in, in1[i]-in0[i])
	}
	res.out0 = in1[b.dcs] - in0[b.dcs]
	slices.Sort(res.done)
	return nil
}

// runMurder times murder seed and murder peer on every host.
func (b *bench) runMurder(ctx context.Context, topology bool) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.startTracker(ctx, topology); err != nil {
		return result{}, err
	}
	seed := b.seeder.Command(ctx, b.murder, "seed", "--torrent", b.torrent, "--data", b.data,
		"--ip", b.seeder.Addr().String(), "--listen", net.JoinHostPort(b.seeder.Addr().String(), peerPort))
	if err := seed.Start(); err != nil {
		return result{}, err
	}
	defer testbed.Stop(seed)
	if err := b.seeded(ctx); err != nil {
		return result{}, fmt.Errorf("seeder: %w", err)
	}
	in0, err := b.wanIn(ctx)
	if err != nil {
		return result{}, err
	}
	type doneAt struct {
		d   time.Duration
		err error
	}
	ch := make(chan doneAt, len(b.peers))
	g := testbed.NewGate()
	defer g.Open()
	var cmds []*exec.Cmd
	var start time.Time
	for _, h := range b.peers {
		args := []string{"peer", "--torrent", b.torrent, "--destination-path", "/srv/murder/m", "--path-is-file",
			"--temp-path", "/tmp/m", "--ip", h.Addr().String(), "--listen", net.JoinHostPort(h.Addr().String(), peerPort),
			"--progress", "json", "--seed-time", "30m", "--timeout", "15m"}
		cmd := g.Command(ctx, h, b.murder, append(args, b.extra...)...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return result{}, err
		}
		if err := g.Start(cmd); err != nil {
			return result{}, err
		}
		cmds = append(cmds, cmd)
		go func() {
			<-g.Opened()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var ev struct {
					Event   string `json:"event"`
					Message string `json:"message"`
				}
				if json.Unmarshal(sc.Bytes(), &ev) != nil {
					continue
				}
				switch ev.Event {
				case "done":
					ch <- doneAt{d: time.Since(start)}
					io.Copy(io.Discard, stdout)
					return
				case "error":
					ch <- doneAt{err: fmt.Errorf("%s: %s", h.Name(), ev.Message)}
					return
				}
			}
			ch <- doneAt{err: fmt.Errorf("%s: murder peer ended without done", h.Name())}
		}()
	}
	defer func() {
		var wg sync.WaitGroup
		for _, c := range cmds {
			wg.Go(func() { testbed.Stop(c) })
		}
		wg.Wait()
	}()
	start = time.Now()
	g.Open()
	var res result
	for range b.peers {
		select {
		case d := <-ch:
			if d.err != nil {
				return result{}, d.err
			}
			res.done = append(res.done, d.d)
			if b.verbose {
				fmt.Printf("    done at %.2fs\n", d.d.Seconds())
			}
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	return res, b.finish(ctx, &res, in0)
}

// runAria2 times an aria2c swarm with murder's tracker.
func (b *bench) runAria2(ctx context.Context, topology bool) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.startTracker(ctx, topology); err != nil {
		return result{}, err
	}
	common := []string{"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--listen-port=" + peerPort, "--seed-ratio=0.0", "--seed-time=30", "--file-allocation=none",
		"--console-log-level=warn", "--summary-interval=0", "--bt-max-peers=0", "--check-certificate=false"}
	seedArgs := append(slices.Clone(common), "--bt-external-ip="+b.seeder.Addr().String(),
		"--bt-seed-unverified=true", "--check-integrity=false", "-d", filepath.Dir(b.data), b.torrent)
	seed := b.seeder.Command(ctx, "aria2c", seedArgs...)
	if err := seed.Start(); err != nil {
		return result{}, err
	}
	defer testbed.Stop(seed)
	if err := b.seeded(ctx); err != nil {
		return result{}, fmt.Errorf("aria2 seeder: %w", err)
	}
	in0, err := b.wanIn(ctx)
	if err != nil {
		return result{}, err
	}
	g := testbed.NewGate()
	defer g.Open()
	var cmds []*exec.Cmd
	for _, h := range b.peers {
		os.Remove(h.Path("/tmp/aria2-done"))
		args := append(slices.Clone(common), "--bt-external-ip="+h.Addr().String(),
			"--on-bt-download-complete="+filepath.Join(b.bin, "aria2-done.sh"), "-d", "/tmp/a", b.torrent)
		cmd := g.Command(ctx, h, "aria2c", args...)
		if err := g.Start(cmd); err != nil {
			return result{}, err
		}
		cmds = append(cmds, cmd)
	}
	defer func() {
		var wg sync.WaitGroup
		for _, c := range cmds {
			wg.Go(func() { testbed.Stop(c) })
		}
		wg.Wait()
	}()
	start := time.Now()
	g.Open()
	var res result
	seen := make([]bool, len(b.peers))
	err = waitFor(ctx, 15*time.Minute, func() bool {
		for i, h := range b.peers {
			if seen[i] {
				continue
			}
			data, err := os.ReadFile(h.Path("/tmp/aria2-done"))
			if err != nil || !strings.HasSuffix(string(data), "\n") {
				continue
			}
			at, err := parseEpoch(strings.TrimSpace(string(data)))
			if err != nil {
				continue
			}
			seen[i] = true
			res.done = append(res.done, at.Sub(start))
		}
		return len(res.done) == len(b.peers)
	})
	if err != nil {
		return result{}, fmt.Errorf("%d of %d aria2 peers done: %w", len(res.done), len(b.peers), err)
	}
	return res, b.finish(ctx, &res, in0)
}

// clean removes what a contender wrote on the peers.
func (b *bench) clean() {
	for _, h := range b.peers {
		for _, p := range []string{"/tmp/m", "/srv/murder/m", "/tmp/a", "/tmp/aria2-done"} {
			os.RemoveAll(h.Path(p))
		}
	}
}

func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(secs, ns), nil
}

func waitFor(ctx context.Context, limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("timed out waiting")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
