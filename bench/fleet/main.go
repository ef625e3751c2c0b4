// Command fleet benchmarks murder's swarm on a test bed of many hosts
// against the lower bound and two baselines measured in the same run.
//
//	go run ./bench/fleet -n 32 -size 64MiB -rate 64Mbit
//
// The bed (internal/testbed, needs root) has a tracker host, a seeder host
// and N peer hosts; the seeder and every peer are capped at -rate up and
// down. Each contender moves one file of -size bytes from the seeder to
// every peer:
//
//   - murder: murder seed plus murder peer on every host (--path-is-file,
//     or extracting a .tgz with -archive), done times from the peers' JSON
//     "done" events;
//   - aria2: aria2c seeding and aria2c on every host, with murder's
//     tracker, done times from --on-bt-download-complete;
//   - central: the seeder sends the file to every host at once over TCP
//     (sendfile), the way a plain copy to each server would.
//
// For each it prints the time until the first, median and last peer was
// done, each also as a ratio to the bound T = max(F/U_seed, F/D,
// N·F/(U_seed + ΣU)) (Kumar and Ross), and the bytes the seeder's link
// sent (wire bytes, so a little above the payload). Contenders alternate
// within each round, with sync and a pause before every timed run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
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
		fmt.Fprintf(os.Stderr, "fleet: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	n         int
	size      int64
	rate      int64
	pieceSize string
	archive   bool   // ship a .tgz that murder peers extract
	bin       string // directory with murder and the aria2 hook, shared into hosts
	murder    string
	alt       string // a second murder binary, or ""
	// murderFlags and altFlags are given to murder seed and murder peer
	// of the contenders murder and alt.
	murderFlags, altFlags []string
	contender             string // the one running now
	bed                   *testbed.Bed
	tracker               *testbed.Host
	seeder                *testbed.Host
	peers                 []*testbed.Host
	torrent               string // inside hosts
	// scrape is the query of a scrape of the torrent alone (a full
	// scrape is off on murder's tracker by default).
	scrape   string
	data     string // inside the seeder host
	trackerP *exec.Cmd
	verbose  bool
	trace    string // directory for per-peer logs of murder runs, or ""
	round    int
	primed   testenv.PrimedMemory // released by startClock
	cpu0     cpuTimes             // the machine's CPU time at startClock
}

const (
	trackerPort = "8998"
	peerPort    = "6881"
	artName     = "artifact.bin"
)

func run() error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	n := fs.Int("n", 32, "number of peer hosts (plus one seeder and one tracker host)")
	sizeFlag := fs.String("size", "64MiB", "artifact size (KiB, MiB, GiB suffixes)")
	rateFlag := fs.String("rate", "64Mbit", "link cap of the seeder and of every peer, each way (Mbit, Gbit, MiB suffixes; bytes/s without)")
	rounds := fs.Int("rounds", 1, "rounds; each runs every contender once, alternating")
	contenders := fs.String("contenders", "murder,aria2,central", "comma-separated contenders to run: murder, alt, aria2, central")
	pieceSize := fs.String("piece-size", "", "murder create --piece-size (default: murder's choice)")
	archive := fs.Bool("archive", false, "ship a .tgz of a directory holding the file, which murder peers extract (F is then the .tgz's size); without it the file itself, placed with --path-is-file")
	murderBin := fs.String("murder", "", "murder binary to use (default: go build ./cmd/murder)")
	altBin := fs.String("alt", "", "a second murder binary, run as the contender \"alt\" (to compare two builds in one run)")
	murderFlags := fs.String("murder-flags", "", "more flags for murder seed and murder peer, space-separated (e.g. \"--max-upload-rate 60Mbit\")")
	altFlags := fs.String("alt-flags", "", "the same for the contender alt; -alt defaults to the murder binary when only this is set")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "print each contender's progress")
	trace := fs.String("trace", "", "directory to write each murder process's progress events and debug log to (ROUND-CONTENDER-HOST.log)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	size, err := bytesize.ParseRate(*sizeFlag)
	if err == nil && size <= 0 {
		err = fmt.Errorf("bad size %q", *sizeFlag)
	}
	if err != nil {
		return err
	}
	rate, err := bytesize.ParseRate(*rateFlag)
	if err == nil && rate <= 0 {
		err = fmt.Errorf("bad rate %q", *rateFlag)
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	b := &bench{n: *n, size: size, rate: rate, pieceSize: *pieceSize, archive: *archive, verbose: *verbose, trace: *trace,
		murderFlags: strings.Fields(*murderFlags), altFlags: strings.Fields(*altFlags)}
	if b.trace != "" {
		if err := os.MkdirAll(b.trace, 0o755); err != nil {
			return err
		}
	}
	b.bin, err = os.MkdirTemp("", "murder-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.bin)
	if *murderBin != "" {
		if b.murder, err = copyBinary(*murderBin, b.bin, "murder"); err != nil {
			return err
		}
	} else if b.murder, err = testenv.BuildMurder(b.bin); err != nil {
		return err
	}
	if *altBin != "" {
		if b.alt, err = copyBinary(*altBin, b.bin, "murder-alt"); err != nil {
			return err
		}
	} else if *altFlags != "" {
		b.alt = b.murder
	}
	hook := "#!/bin/sh\ndate +%s.%N > /tmp/aria2-done\n"
	if err := os.WriteFile(filepath.Join(b.bin, "aria2-done.sh"), []byte(hook), 0o755); err != nil {
		return err
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.bed.Close()

	bound := b.bound()
	fmt.Printf("fleet: N=%d peers, F=%s, U=D=%s (%.1f Mbit/s) on seeder and peers, bound T=%.2fs\n",
		b.n, *sizeFlag, *rateFlag, float64(rate)*8/1e6, bound.Seconds())
	results := map[string][]result{}
	names := strings.Split(*contenders, ",")
	for r := range *rounds {
		b.round = r + 1
		order := slices.Clone(names)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			b.contender = name
			pause()
			var err error
			if b.primed, err = testenv.PrimeMemory(b.primeSize()); err != nil {
				return err
			}
			var res result
			switch name {
			case "murder":
				res, err = b.runMurder(ctx, b.murder, b.murderFlags)
			case "alt":
				if b.alt == "" {
					return errors.New("contender alt needs -alt PATH or -alt-flags")
				}
				res, err = b.runMurder(ctx, b.alt, b.altFlags)
			case "aria2":
				res, err = b.runAria2(ctx)
			case "central":
				res, err = b.runCentral(ctx)
			default:
				return fmt.Errorf("unknown contender %q", name)
			}
			b.primed.Release()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			extra := ""
			if res.cpuTime > 0 {
				extra = fmt.Sprintf("  its cpu time %5.1fs", res.cpuTime.Seconds())
			}
			if res.pass > 0 {
				extra += fmt.Sprintf("  seeder's pass %5.2fs", res.pass.Seconds())
			}
			if p := res.peersTx.packets; p > 0 {
				extra += fmt.Sprintf("  peers' packets %.1f KB", float64(res.peersTx.bytes)/float64(p)/1e3)
			}
			fmt.Printf("  round %d %-8s first %6.2fs  median %6.2fs  last %6.2fs  seeder sent %.2f F  peers' upload used %3.0f%%  cpu busy %v%s\n",
				r+1, name, res.first().Seconds(), res.median().Seconds(), res.last().Seconds(), float64(res.seederTx)/float64(b.size),
				100*res.peerUse(b.n, b.rate), res.cpu, extra)
			if b.trace != "" && (name == "murder" || name == "alt") {
				if sp, err := b.spread(); err != nil {
					fmt.Printf("    pieces spread: %v\n", err)
				} else {
					fmt.Printf("    %v\n", sp)
				}
			}
			results[name] = append(results[name], res)
			b.clean()
		}
	}
	fmt.Printf("\n%-8s %8s %8s %8s %9s %9s %9s %12s %9s\n", "", "first", "median", "last", "first/T", "median/T", "last/T", "seeder sent", "cpu time")
	for _, name := range names {
		rs := results[name]
		f, m, l, tx := medianOf(rs, result.first), medianOf(rs, result.median), medianOf(rs, result.last), medianTx(rs)
		cpu := "-" // the central copy runs in this process
		if d := medianOf(rs, func(r result) time.Duration { return r.cpuTime }); d > 0 {
			cpu = fmt.Sprintf("%.1fs", d.Seconds())
		}
		fmt.Printf("%-8s %7.2fs %7.2fs %7.2fs %9.3f %9.3f %9.3f %10.2f F %9s\n", name,
			f.Seconds(), m.Seconds(), l.Seconds(),
			f.Seconds()/bound.Seconds(), m.Seconds()/bound.Seconds(), l.Seconds()/bound.Seconds(), float64(tx)/float64(b.size), cpu)
	}
	return nil
}

// copyBinary copies the executable src into dir as name (dir is shared
// into the hosts) and returns the copy's path.
func copyBinary(src, dir, name string) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name)
	return dst, os.WriteFile(dst, data, 0o755)
}

// bound is T = max(F/U_seed, F/D, N·F/(U_seed + ΣU)).
func (b *bench) bound() time.Duration {
	f, u := float64(b.size), float64(b.rate)
	t := max(f/u, f/u, float64(b.n)*f/(u+float64(b.n)*u))
	return time.Duration(t * float64(time.Second))
}

func (b *bench) setup(ctx context.Context) error {
	link := testbed.Link{Up: b.rate, Down: b.rate}
	bed, err := testbed.New(ctx, testbed.Config{Hosts: b.n + 2, Link: link, Share: []string{b.bin}})
	if err != nil {
		return err
	}
	b.bed = bed
	b.tracker, b.seeder, b.peers = bed.Host(0), bed.Host(1), bed.Hosts()[2:]
	// The tracker's own link is not part of the measurement.
	if err := b.tracker.SetLink(ctx, testbed.Link{}); err != nil {
		return err
	}
	src := "/srv/murder/src/" + artName
	if b.archive {
		src = "/srv/murder/src/bench/" + artName
	}
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
	args := []string{"create", "--tag", "bench", "--path-is-file", "--files-path", src, "--temp-path", "/srv/murder/out",
		"--tracker", b.trackerAddr()}
	b.data = "/srv/murder/out/" + artName
	if b.archive {
		args = []string{"create", "--tag", "bench", "--files-path", filepath.Dir(src), "--temp-path", "/srv/murder/out",
			"--tracker", b.trackerAddr()}
		b.data = "/srv/murder/out/bench.tgz"
	}
	if b.pieceSize != "" {
		args = append(args, "--piece-size", b.pieceSize)
	}
	out, err := b.seeder.Run(ctx, b.murder, args...)
	if err != nil {
		return err
	}
	fmt.Print(string(out))
	b.torrent = b.data + ".torrent"
	fi, err := os.Stat(b.seeder.Path(b.data))
	if err != nil {
		return err
	}
	b.size = fi.Size()
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

func (b *bench) trackerAddr() string {
	return net.JoinHostPort(b.tracker.Addr().String(), trackerPort)
}

// startTracker (re)starts murder tracker, so no contender sees another's
// peers.
func (b *bench) startTracker(ctx context.Context) error {
	if b.trackerP != nil {
		b.trackerP.Process.Kill()
		b.trackerP.Wait()
	}
	cmd := b.tracker.Command(ctx, b.murder, "tracker", "--listen", b.trackerAddr(), "--interval", "5s")
	if f := b.traceFile(b.tracker.Name() + "-tracker"); f != nil {
		cmd.Args = append(cmd.Args, "--log-level", "debug")
		cmd.Stderr = f
	}
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

// seeded waits until the tracker counts a seeder for the torrent and then
// returns what the links have sent so far, the baseline of a timed run.
func (b *bench) seeded(ctx context.Context) (sentBytes, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: b.seeder.DialContext, DisableKeepAlives: true}}
	err := waitFor(ctx, 30*time.Second, func() bool {
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
	if err != nil {
		return sentBytes{}, fmt.Errorf("never announced: %w", err)
	}
	return b.sent(ctx)
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

type result struct {
	done     []time.Duration // per peer, sorted
	seederTx int64
	peersTx  linkTx        // what all peers' links sent, until the last was done
	cpu      cpuUse        // how the machine's CPU time was used until then
	cpuTime  time.Duration // CPU time the contender's processes used until then
	pass     time.Duration // when murder's seeder had sent every piece once (0: not known)
}

// peerUse is the share of the peers' upload capacity the run used until
// the last peer was done.
func (r result) peerUse(n int, rate int64) float64 {
	return float64(r.peersTx.bytes) / (float64(n) * float64(rate) * r.last().Seconds())
}

func (r result) first() time.Duration  { return r.done[0] }
func (r result) last() time.Duration   { return r.done[len(r.done)-1] }
func (r result) median() time.Duration { return r.done[len(r.done)/2] }

func medianOf(rs []result, f func(result) time.Duration) time.Duration {
	var v []time.Duration
	for _, r := range rs {
		v = append(v, f(r))
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func medianTx(rs []result) int64 {
	var v []int64
	for _, r := range rs {
		v = append(v, r.seederTx)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// linkTx is what a host's link has sent: bytes and packets, a packet
// being what the kernel hands the device, up to 64 KiB when TCP
// segmentation is left to it.
type linkTx struct{ bytes, packets int64 }

func (t linkTx) minus(t0 linkTx) linkTx { return linkTx{t.bytes - t0.bytes, t.packets - t0.packets} }

func txOf(ctx context.Context, h *testbed.Host) (linkTx, error) {
	out, err := h.Run(ctx, "cat", "/sys/class/net/eth0/statistics/tx_bytes", "/sys/class/net/eth0/statistics/tx_packets")
	if err != nil {
		return linkTx{}, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return linkTx{}, fmt.Errorf("%s: link statistics %q", h.Name(), out)
	}
	var t linkTx
	if t.bytes, err = strconv.ParseInt(f[0], 10, 64); err == nil {
		t.packets, err = strconv.ParseInt(f[1], 10, 64)
	}
	return t, err
}

// runMurder times murder seed + murder peer on every host.
func (b *bench) runMurder(ctx context.Context, murder string, flags []string) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.startTracker(ctx); err != nil {
		return result{}, err
	}
	seed := b.seeder.Command(ctx, murder, "seed", "--torrent", b.torrent, "--data", b.data,
		"--ip", b.seeder.Addr().String(), "--listen", net.JoinHostPort(b.seeder.Addr().String(), peerPort))
	// At debug level the seeder logs when its unique pass ended.
	seed.Args = append(seed.Args, "--log-level", "debug")
	seed.Args = append(seed.Args, flags...)
	pass := &passWatch{w: b.logTo("seeder")}
	if f := b.traceFile(b.seeder.Name() + "-seed"); f != nil {
		defer f.Close()
		pass.w = f
	}
	seed.Stderr = pass
	if err := seed.Start(); err != nil {
		return result{}, err
	}
	defer testbed.Stop(seed)
	sent0, err := b.seeded(ctx)
	if err != nil {
		return result{}, fmt.Errorf("seeder: %w", err)
	}
	seedTicks := procTicks(seed)
	g := testbed.NewGate()
	defer g.Open() // on the way out of a failed start
	var start time.Time
	type doneAt struct {
		i   int
		d   time.Duration
		err error
	}
	ch := make(chan doneAt, len(b.peers))
	var cmds []*exec.Cmd
	for i, h := range b.peers {
		cmd := g.Command(ctx, h, murder, "peer", "--torrent", b.torrent, "--destination-path", "/srv/murder/m",
			"--temp-path", "/tmp/m", "--ip", h.Addr().String(),
			"--listen", net.JoinHostPort(h.Addr().String(), peerPort),
			"--progress", "json", "--seed-time", "30m", "--timeout", "15m")
		cmd.Args = append(cmd.Args, flags...)
		if !b.archive {
			cmd.Args = append(cmd.Args, "--path-is-file")
		}
		cmd.Stderr = b.logTo(h.Name())
		tf := b.traceFile(h.Name())
		if tf != nil {
			defer tf.Close()
			cmd.Args = append(cmd.Args, "--log-level", "debug")
			cmd.Stderr = tf
		}
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
			sentDone := false
			for sc.Scan() {
				var ev struct {
					Event   string `json:"event"`
					Message string `json:"message"`
				}
				if json.Unmarshal(sc.Bytes(), &ev) != nil {
					continue
				}
				if i == 0 {
					b.progress("murder %s %.2fs: %s", h.Name(), time.Since(start).Seconds(), sc.Text())
				}
				if tf != nil {
					fmt.Fprintf(tf, "%.3fs %s\n", time.Since(start).Seconds(), sc.Text())
				}
				switch ev.Event {
				case "done":
					ch <- doneAt{i: i, d: time.Since(start)}
					sentDone = true
					if tf == nil {
						io.Copy(io.Discard, stdout)
						return
					}
				case "error":
					if !sentDone {
						ch <- doneAt{i: i, err: errors.New(ev.Message)}
					}
					return
				}
			}
			if sentDone {
				return
			}
			ch <- doneAt{i: i, err: fmt.Errorf("%s: murder peer ended without done", h.Name())}
		}()
	}
	defer func() {
		var wg sync.WaitGroup
		for _, c := range cmds {
			wg.Go(func() { testbed.Stop(c) })
		}
		wg.Wait()
	}()
	start = b.startClock()
	pass.started(start)
	g.Open()
	var res result
	for range b.peers {
		select {
		case d := <-ch:
			if d.err != nil {
				return result{}, d.err
			}
			res.done = append(res.done, d.d)
			b.progress("murder: %s done at %.2fs", b.peers[d.i].Name(), d.d.Seconds())
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	sent1, err := b.sent(ctx)
	if err != nil {
		return result{}, err
	}
	res.seederTx, res.peersTx = sent1.seeder.minus(sent0.seeder).bytes, sent1.peers.minus(sent0.peers)
	res.cpu = b.machineCPU()
	res.cpuTime = time.Duration(procTicks(seed)-seedTicks+procTicks(cmds...)) * clockTick
	res.pass = pass.ended()
	slices.Sort(res.done)
	return res, nil
}

// passLine is what murder's seeder logs (at debug level) when every piece
// has gone out once.
var passLine = []byte(`msg="every piece went out once"`)

// passWatch passes the seeder's log on to w (nil drops it) and notes when
// the seeder's unique pass ended, from the start of the clock.
type passWatch struct {
	w     io.Writer
	mu    sync.Mutex
	start time.Time
	at    time.Duration
	line  []byte // the last line so far, which a write may have cut
}

func (p *passWatch) started(t time.Time) {
	p.mu.Lock()
	p.start = t
	p.mu.Unlock()
}

// ended returns when the pass ended, or 0 if it was not seen.
func (p *passWatch) ended() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at
}

func (p *passWatch) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.at == 0 && !p.start.IsZero() {
		p.line = append(p.line, b...)
		if bytes.Contains(p.line, passLine) {
			p.at = time.Since(p.start)
		}
		if i := bytes.LastIndexByte(p.line, '\n'); i >= 0 {
			p.line = append(p.line[:0], p.line[i+1:]...)
		}
	}
	p.mu.Unlock()
	if p.w == nil {
		return len(b), nil
	}
	return p.w.Write(b)
}

// sentBytes is what the seeder's link and the peers' links together have
// sent so far.
type sentBytes struct{ seeder, peers linkTx }

func (b *bench) sent(ctx context.Context) (sentBytes, error) {
	var s sentBytes
	var err error
	if s.seeder, err = txOf(ctx, b.seeder); err != nil {
		return s, err
	}
	for _, h := range b.peers {
		t, err := txOf(ctx, h)
		if err != nil {
			return s, err
		}
		s.peers.bytes += t.bytes
		s.peers.packets += t.packets
	}
	return s, nil
}

// runAria2 times an aria2c swarm with murder's tracker.
func (b *bench) runAria2(ctx context.Context) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.startTracker(ctx); err != nil {
		return result{}, err
	}
	common := []string{"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--listen-port=" + peerPort, "--seed-ratio=0.0", "--seed-time=30", "--file-allocation=none",
		"--console-log-level=warn", "--summary-interval=0", "--bt-max-peers=0", "--check-certificate=false"}
	seedArgs := append(slices.Clone(common), "--bt-external-ip="+b.seeder.Addr().String(),
		"--bt-seed-unverified=true", "--check-integrity=false", "-d", filepath.Dir(b.data), b.torrent)
	seed := b.seeder.Command(ctx, "aria2c", seedArgs...)
	seed.Stdout, seed.Stderr = b.logTo("aria2 seeder"), b.logTo("aria2 seeder")
	if err := seed.Start(); err != nil {
		return result{}, err
	}
	defer testbed.Stop(seed)
	sent0, err := b.seeded(ctx)
	if err != nil {
		return result{}, fmt.Errorf("aria2 seeder: %w", err)
	}
	seedTicks := procTicks(seed)
	g := testbed.NewGate()
	defer g.Open()
	var cmds []*exec.Cmd
	exited := make(chan int, len(b.peers))
	for i, h := range b.peers {
		os.Remove(h.Path("/tmp/aria2-done"))
		args := append(slices.Clone(common), "--bt-external-ip="+h.Addr().String(),
			"--on-bt-download-complete="+filepath.Join(b.bin, "aria2-done.sh"), "-d", "/tmp/a", b.torrent)
		cmd := g.Command(ctx, h, "aria2c", args...)
		cmd.Stdout, cmd.Stderr = b.logTo(h.Name()), b.logTo(h.Name())
		if err := g.Start(cmd); err != nil {
			return result{}, err
		}
		cmds = append(cmds, cmd)
		go func() { cmd.Wait(); exited <- i }()
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGTERM)
		}
		for range cmds {
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
			}
		}
		for _, c := range cmds {
			c.Process.Kill()
		}
	}()
	start := b.startClock()
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
			b.progress("aria2: %s done at %.2fs", h.Name(), at.Sub(start).Seconds())
		}
		return len(res.done) == len(b.peers)
	})
	if err != nil {
		return result{}, fmt.Errorf("%d of %d aria2 peers done: %w", len(res.done), len(b.peers), err)
	}
	sent1, err := b.sent(ctx)
	if err != nil {
		return result{}, err
	}
	res.seederTx, res.peersTx = sent1.seeder.minus(sent0.seeder).bytes, sent1.peers.minus(sent0.peers)
	res.cpu = b.machineCPU()
	res.cpuTime = time.Duration(procTicks(seed)-seedTicks+procTicks(cmds...)) * clockTick
	slices.Sort(res.done)
	return res, nil
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

// runCentral sends the file from the seeder host to every peer host at
// once, one TCP connection each, and times each host's copy.
func (b *bench) runCentral(ctx context.Context) (result, error) {
	tx0, err := txOf(ctx, b.seeder)
	if err != nil {
		return result{}, err
	}
	type doneAt struct {
		d   time.Duration
		err error
	}
	ch := make(chan doneAt, len(b.peers))
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for _, h := range b.peers {
		ln, err := h.Listen("tcp", net.JoinHostPort(h.Addr().String(), "7000"))
		if err != nil {
			return result{}, err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	start := b.startClock()
	for i, h := range b.peers {
		go func() {
			c, err := lns[i].Accept()
			if err != nil {
				ch <- doneAt{err: err}
				return
			}
			defer c.Close()
			p := h.Path("/tmp/central.bin")
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.Create(p)
			if err != nil {
				ch <- doneAt{err: err}
				return
			}
			n, err := io.Copy(f, c)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && n != b.size {
				err = fmt.Errorf("%s received %d bytes, want %d", h.Name(), n, b.size)
			}
			ch <- doneAt{d: time.Since(start), err: err}
		}()
		go func() {
			c, err := b.seeder.DialContext(ctx, "tcp", addrs[i])
			if err != nil {
				ch <- doneAt{err: err}
				return
			}
			defer c.Close()
			f, err := os.Open(b.seeder.Path(b.data))
			if err != nil {
				ch <- doneAt{err: err}
				return
			}
			defer f.Close()
			if _, err := io.Copy(c, f); err != nil {
				ch <- doneAt{err: err}
			}
		}()
	}
	var res result
	for range b.peers {
		select {
		case d := <-ch:
			if d.err != nil {
				return result{}, d.err
			}
			res.done = append(res.done, d.d)
			b.progress("central: host done at %.2fs", d.d.Seconds())
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	tx1, err := txOf(ctx, b.seeder)
	if err != nil {
		return result{}, err
	}
	res.seederTx = tx1.minus(tx0).bytes
	res.cpu = b.machineCPU()
	slices.Sort(res.done)
	return res, nil
}

// clean removes what a contender wrote on the peers.
func (b *bench) clean() {
	for _, h := range b.peers {
		for _, p := range []string{"/tmp/m", "/srv/murder/m", "/tmp/a", "/tmp/central.bin", "/tmp/aria2-done"} {
			os.RemoveAll(h.Path(p))
		}
	}
}

// primeSize is how much memory to prime before a run (testenv.PrimeMemory
// says why): room for every host's download and its copy into place, up
// to the memory available less primeSpare (or half of it, if more). With
// at most half primed, 32 peers of a 256 MiB file wrote 5 GiB of their 16
// GiB to memory given back to the host, and murder, which writes it twice
// where aria2 writes it once, used 86-93 s of CPU time per round against
// 81-83 s with all of it primed.
func (b *bench) primeSize() int64 {
	n := int64(b.n)*2*b.size + 256<<20
	if avail := memAvailable(); avail > 0 {
		n = min(n, max(avail-primeSpare, avail/2))
	}
	return n
}

// primeSpare is the memory available that priming leaves alone, for the
// processes and the page cache of the binaries and the seeder's file.
const primeSpare = 2 << 30

// memAvailable reads MemAvailable from /proc/meminfo, or returns 0.
func memAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// startClock releases the primed memory and returns the start of a timed
// run: the downloaders start right after.
func (b *bench) startClock() time.Time {
	b.primed.Release()
	b.cpu0 = readCPUTimes()
	return time.Now()
}

// cpuTimes is the first line of /proc/stat: the machine's CPU time by
// kind, in clock ticks (user, nice, system, idle, iowait, irq, softirq,
// steal; guest time is counted in user already).
type cpuTimes [8]int64

func readCPUTimes() cpuTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return parseCPUTimes(line)
}

func parseCPUTimes(line string) cpuTimes {
	var t cpuTimes
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "cpu" {
		return t
	}
	for i := range min(len(t), len(f)-1) {
		t[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	return t
}

// cpuUse is how the machine's CPU time went during a timed run, as shares
// of all of it. Steal is time the hypervisor gave to other machines: it
// counts as busy, since the contenders could not run then either.
type cpuUse struct{ busy, user, sys, softirq, steal float64 }

// since returns how the CPU time between t0 and t was used.
func (t cpuTimes) since(t0 cpuTimes) cpuUse {
	var d cpuTimes
	var total float64
	for i := range t {
		d[i] = t[i] - t0[i]
		total += float64(d[i])
	}
	if total <= 0 {
		return cpuUse{}
	}
	share := func(v int64) float64 { return float64(v) / total }
	return cpuUse{
		busy:    share(d[0] + d[1] + d[2] + d[5] + d[6] + d[7]),
		user:    share(d[0] + d[1]),
		sys:     share(d[2] + d[5]),
		softirq: share(d[6]),
		steal:   share(d[7]),
	}
}

func (u cpuUse) String() string {
	return fmt.Sprintf("%3.0f%% (user %.0f, sys %.0f, softirq %.0f, steal %.0f)", 100*u.busy, 100*u.user, 100*u.sys, 100*u.softirq, 100*u.steal)
}

// procTicks is the CPU time (user and system, in clock ticks) that the
// processes of cmds have used so far.
func procTicks(cmds ...*exec.Cmd) int64 {
	var sum int64
	for _, c := range cmds {
		if c.Process == nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil {
			continue
		}
		// Fields 14 and 15 (utime, stime) follow the command name, which
		// is in parentheses and may hold spaces.
		_, rest, _ := strings.Cut(string(data), ") ")
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + st
	}
	return sum
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ).
const clockTick = 10 * time.Millisecond

// machineCPU is how the machine's CPU time was used since startClock.
func (b *bench) machineCPU() cpuUse { return readCPUTimes().since(b.cpu0) }

// pause lets the disk settle before a timed run.
func pause() {
	exec.Command("sync").Run()
	time.Sleep(2 * time.Second)
}

// traceFile opens ROUND-CONTENDER-NAME.log in the trace directory, or returns nil.
func (b *bench) traceFile(name string) *syncFile {
	if b.trace == "" {
		return nil
	}
	f, err := os.Create(b.tracePath(name))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleet: trace: %v\n", err)
		return nil
	}
	return &syncFile{f: f}
}

func (b *bench) tracePath(name string) string {
	return filepath.Join(b.trace, fmt.Sprintf("%d-%s-%s.log", b.round, b.contender, name))
}

// spread measures how fast pieces spread in the murder round just traced.
func (b *bench) spread() (spread, error) {
	peers := map[netip.Addr]string{}
	for _, h := range b.peers {
		peers[h.Addr()] = b.tracePath(h.Name())
	}
	return readSpread(b.seeder.Addr(), b.tracePath(b.seeder.Name()+"-seed"), peers)
}

// syncFile is a file written by a process's stderr and our event copy.
type syncFile struct {
	mu sync.Mutex
	f  *os.File
}

func (s *syncFile) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Write(p)
}

func (s *syncFile) Close() error { return s.f.Close() }

func (b *bench) logTo(name string) io.Writer {
	if !b.verbose {
		return nil
	}
	return &prefixWriter{prefix: name + ": "}
}

func (b *bench) progress(format string, args ...any) {
	if b.verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

type prefixWriter struct {
	mu     sync.Mutex
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		fmt.Fprintf(os.Stderr, "%s%s\n", w.prefix, line)
	}
	return len(p), nil
}
