// Command transfer benchmarks moving one artifact from one seeder to one
// peer over loopback with murder, with libtorrent on both ends and with
// aria2c on both ends, in one run.
//
//	go run ./bench/transfer -size 1GiB -rounds 3
//
// Contenders (each seeder serves the same file, warm in the page cache;
// every downloader starts with an empty directory and verifies every piece):
//
//   - murder: `murder seed` and `murder peer --path-is-file --seed-time 0
//     --progress json`; the peer is done at its "downloaded" event (every
//     piece verified, before the files are renamed into place);
//   - libtorrent: internal/interop/testdata/ltclient.py on both ends with
//     libtorrent's high_performance_seed settings; done when the downloader
//     turns seeder;
//   - aria2: aria2c seeding with --bt-seed-unverified and aria2c
//     downloading; done when --on-bt-download-complete runs.
//
// Peers meet through murder's tracker (in this process, fresh for each
// run). Before each timed run the bench runs sync and pauses, and it
// releases memory it wrote just before the downloader starts (testenv.PrimeMemory
// says why); contenders alternate (A B C, then C B A, ...). For each run it prints MiB/s from
// the downloader's start to its done, and the CPU seconds (user+sys) that
// the downloader spent until done plus what the seeder spent meanwhile,
// read from /proc. It ends with medians and murder's ratios to the best
// other contender.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "transfer: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	dir      string
	size     int64
	murder   string
	ltclient string
	pause    time.Duration
	verbose  bool
	data     string // the artifact, dir/seed/NAME
	torrent  string
	port     int // tracker port
	announce string
}

type result struct {
	name      string
	round     int
	seconds   float64
	cpuSeed   float64
	cpuPeer   float64
	mibPerSec float64
}

func run() error {
	var b bench
	size := flag.String("size", "1GiB", "artifact size (bytes; units as for rates: 1GiB, 500MB)")
	rounds := flag.Int("rounds", 3, "rounds; each runs every contender once")
	only := flag.String("only", "murder,libtorrent,aria2", "contenders to run, comma-separated")
	piece := flag.Int64("piece-length", 0, "piece length in bytes (0: murder's choice for the size)")
	flag.StringVar(&b.dir, "dir", filepath.Join(os.TempDir(), "murder-bench-transfer"), "work directory (the artifact is kept there between runs)")
	flag.StringVar(&b.murder, "murder", "", "murder binary (default: build ./cmd/murder into -dir)")
	flag.StringVar(&b.ltclient, "ltclient", "internal/interop/testdata/ltclient.py", "libtorrent driver script")
	flag.DurationVar(&b.pause, "pause", 3*time.Second, "pause after sync before each timed run")
	flag.BoolVar(&b.verbose, "v", false, "print the clients' output")
	flag.Parse()
	var err error
	if b.size, err = bytesize.ParseRate(*size); err != nil || b.size <= 0 {
		return fmt.Errorf("-size %q: want a size like 1GiB", *size)
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	if b.murder == "" {
		if b.murder, err = testenv.BuildMurder(b.dir); err != nil {
			return err
		}
	}
	if err := b.prepare(*piece); err != nil {
		return err
	}
	contenders := map[string]func(round int) (result, error){
		"murder":     b.runMurder,
		"libtorrent": b.runLibtorrent,
		"aria2":      b.runAria2,
	}
	names := strings.Split(*only, ",")
	for _, n := range names {
		if contenders[n] == nil {
			return fmt.Errorf("-only: unknown contender %q", n)
		}
	}
	fmt.Printf("moving %s (%d pieces of %d KiB) seeder -> 1 peer over loopback, %d rounds\n",
		bytesize.Format(b.size), b.pieces(), b.pieceLength()>>10, *rounds)
	fmt.Printf("%-11s %5s %9s %8s %9s %9s %9s %10s\n", "contender", "round", "MiB/s", "seconds", "cpu seed", "cpu peer", "cpu total", "cpu s/GiB")
	var all []result
	for r := 1; r <= *rounds; r++ {
		order := slices.Clone(names)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, n := range order {
			if err := b.settle(); err != nil {
				return err
			}
			res, err := contenders[n](r)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", n, r, err)
			}
			res.name, res.round = n, r
			res.mibPerSec = float64(b.size) / (1 << 20) / res.seconds
			all = append(all, res)
			total := res.cpuSeed + res.cpuPeer
			fmt.Printf("%-11s %5d %9.1f %8.2f %9.2f %9.2f %9.2f %10.2f\n", n, r, res.mibPerSec, res.seconds,
				res.cpuSeed, res.cpuPeer, total, total/(float64(b.size)/(1<<30)))
		}
	}
	b.summary(names, all)
	return nil
}

// summary prints medians per contender and murder's ratios to the best.
func (b *bench) summary(names []string, all []result) {
	type med struct{ rate, cpuPerGiB float64 }
	meds := map[string]med{}
	fmt.Printf("\nmedians:\n%-11s %9s %10s\n", "contender", "MiB/s", "cpu s/GiB")
	for _, n := range names {
		var rates, cpus []float64
		for _, r := range all {
			if r.name == n {
				rates = append(rates, r.mibPerSec)
				cpus = append(cpus, (r.cpuSeed+r.cpuPeer)/(float64(b.size)/(1<<30)))
			}
		}
		m := med{median(rates), median(cpus)}
		meds[n] = m
		fmt.Printf("%-11s %9.1f %10.2f\n", n, m.rate, m.cpuPerGiB)
	}
	m, ok := meds["murder"]
	if !ok {
		return
	}
	best := ""
	for _, n := range names {
		if n != "murder" && (best == "" || meds[n].rate > meds[best].rate) {
			best = n
		}
	}
	if best == "" {
		return
	}
	fmt.Printf("\nmurder / %s (best other): rate x%.2f, cpu per GiB x%.2f\n", best, m.rate/meds[best].rate, m.cpuPerGiB/meds[best].cpuPerGiB)
	if lt, ok := meds["libtorrent"]; ok && best != "libtorrent" {
		fmt.Printf("murder / libtorrent: rate x%.2f, cpu per GiB x%.2f\n", m.rate/lt.rate, m.cpuPerGiB/lt.cpuPerGiB)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) pieceLength() int64 {
	mi, err := metainfo.Load(b.torrent)
	if err != nil {
		return 0
	}
	return mi.Info.PieceLength
}

func (b *bench) pieces() int {
	mi, err := metainfo.Load(b.torrent)
	if err != nil {
		return 0
	}
	return mi.Info.NumPieces()
}

// prepare writes the artifact (random bytes; kept when it already has the
// right size) and its torrent, announcing to a fixed loopback port.
func (b *bench) prepare(pieceLen int64) error {
	seedDir := filepath.Join(b.dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		return err
	}
	b.data = filepath.Join(seedDir, "artifact.bin")
	if fi, err := os.Stat(b.data); err != nil || fi.Size() != b.size {
		fmt.Fprintf(os.Stderr, "writing %s of random data to %s\n", bytesize.Format(b.size), b.data)
		if err := writeRandom(b.data, b.size); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b.announce = fmt.Sprintf("http://127.0.0.1:%d/announce", b.port)
	if pieceLen == 0 {
		pieceLen = metainfo.ChoosePieceLength(b.size)
	}
	info := metainfo.Info{Name: "artifact.bin", PieceLength: pieceLen, Length: b.size}
	f, err := os.Open(b.data)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, pieceLen)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			sum := sha1.Sum(buf[:n])
			info.Pieces = append(info.Pieces, sum[:]...)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	mi, err := metainfo.New(info, []string{b.announce})
	if err != nil {
		return err
	}
	b.torrent = filepath.Join(b.dir, "artifact.bin.torrent")
	return metainfo.WriteFile(b.torrent, mi, true)
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{'m', 'u', 'r', 'd', 'e', 'r'})
	w := bufio.NewWriterSize(f, 4<<20)
	if _, err := io.CopyN(w, r, size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// settle removes the last download, syncs, reads the artifact (so every
// seeder finds it in the page cache) and pauses.
func (b *bench) settle() error {
	if err := os.RemoveAll(filepath.Join(b.dir, "peer")); err != nil {
		return err
	}
	if err := exec.Command("sync").Run(); err != nil {
		return err
	}
	f, err := os.Open(b.data)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, f)
	f.Close()
	if err != nil {
		return err
	}
	time.Sleep(b.pause)
	return nil
}

// startTracker serves a fresh tracker on b.port until the returned stop.
func (b *bench) startTracker() (stop func(), err error) {
	srv, err := tracker.NewServer(tracker.Config{Interval: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	var ln net.Listener
	for range 50 {
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b.port)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	return func() { cancel(); <-done }, nil
}

// waitSeeder polls the tracker until it lists a seeder.
func (b *bench) waitSeeder(p *proc) error {
	mi, err := metainfo.Load(b.torrent)
	if err != nil {
		return err
	}
	ih := mi.InfoHash()
	var q strings.Builder
	for _, c := range ih {
		fmt.Fprintf(&q, "%%%02X", c)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d/scrape?info_hash=%s", b.port, q.String())
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("seeder exited: %s", p.tail())
		}
		resp, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if st, err := tracker.DecodeScrapeResponse(body); err == nil && st[ih].Complete > 0 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the seeder never reached the tracker")
}

// timed runs one transfer: seeder up and announced, then the downloader
// from start to done. done blocks until the downloader is done; got is
// the downloaded file, or a pattern that matches it alone.
func (b *bench) timed(seeder, peer *exec.Cmd, seederReady func(*proc) error, done func(*proc) error, got string) (result, error) {
	var res result
	stopTracker, err := b.startTracker()
	if err != nil {
		return res, err
	}
	defer stopTracker()
	if err := os.MkdirAll(filepath.Join(b.dir, "peer"), 0o755); err != nil {
		return res, err
	}
	// Room for the download's page cache (twice over) and socket
	// buffers, released right before the downloader starts.
	primed, err := testenv.PrimeMemory(2*b.size + 256<<20)
	if err != nil {
		return res, err
	}
	defer primed.Release()
	sp, err := startProc("seeder", seeder, b.verbose)
	if err != nil {
		return res, err
	}
	defer sp.stop()
	if seederReady != nil {
		if err := seederReady(sp); err != nil {
			return res, err
		}
	}
	if err := b.waitSeeder(sp); err != nil {
		return res, err
	}
	seedCPU0, err := cpuSeconds(sp.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	primed.Release()
	t0 := time.Now()
	pp, err := startProc("peer", peer, b.verbose)
	if err != nil {
		return res, err
	}
	defer pp.stop()
	if err := done(pp); err != nil {
		return res, err
	}
	res.seconds = time.Since(t0).Seconds()
	seedCPU1, err1 := cpuSeconds(sp.cmd.Process.Pid)
	peerCPU, err2 := cpuSeconds(pp.cmd.Process.Pid)
	if err := errors.Join(err1, err2); err != nil {
		return res, err
	}
	res.cpuSeed, res.cpuPeer = seedCPU1-seedCPU0, peerCPU
	pp.stop()
	sp.stop()
	if files, _ := filepath.Glob(got); len(files) == 1 {
		got = files[0]
	}
	if err := sameFile(b.data, got); err != nil {
		return res, err
	}
	return res, nil
}

func (b *bench) runMurder(int) (result, error) {
	peerDir := filepath.Join(b.dir, "peer")
	seeder := exec.Command(b.murder, "seed", "--torrent", b.torrent, "--data", b.data, "--listen", "127.0.0.1:0")
	peer := exec.Command(b.murder, "peer", "--torrent", b.torrent, "--destination-path", filepath.Join(peerDir, "dest"),
		"--temp-path", filepath.Join(peerDir, "tmp"), "--path-is-file", "--seed-time", "0", "--progress", "json",
		"--listen", "127.0.0.1:0")
	return b.timed(seeder, peer, nil, func(p *proc) error {
		return p.waitLine(func(l string) bool {
			var ev progress.Event
			return json.Unmarshal([]byte(l), &ev) == nil &&
				(ev.State == progress.StateDownloaded || ev.Event == progress.EventDone)
		})
	}, filepath.Join(peerDir, "dest", "*artifact.bin*", "artifact.bin")) // placed, or still in its partial stage
}

func (b *bench) runLibtorrent(int) (result, error) {
	peerDir := filepath.Join(b.dir, "peer")
	seeder := exec.Command(testenv.PythonLT, b.ltclient, "seed", b.torrent, filepath.Dir(b.data), "--high-performance", "--timeout", "3600")
	peer := exec.Command(testenv.PythonLT, b.ltclient, "download", b.torrent, peerDir, "--high-performance", "--timeout", "3600")
	isSeeding := func(p *proc) error { return p.waitLine(func(l string) bool { return l == "seeding" }) }
	return b.timed(seeder, peer, isSeeding, isSeeding, filepath.Join(peerDir, "artifact.bin"))
}

func (b *bench) runAria2(int) (result, error) {
	peerDir := filepath.Join(b.dir, "peer")
	marker := filepath.Join(b.dir, "aria2-done")
	hook := filepath.Join(b.dir, "aria2-hook.sh")
	os.Remove(marker)
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		return result{}, err
	}
	common := func(dir string, port int) []string {
		return []string{"--dir=" + dir, "--listen-port=" + strconv.Itoa(port),
			"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
			"--disable-ipv6=true", "--file-allocation=falloc", "--summary-interval=0", "--show-console-readout=false",
			"--console-log-level=warn", "--auto-save-interval=0", "--allow-overwrite=true"}
	}
	seeder := exec.Command("aria2c", append(common(filepath.Dir(b.data), freePort()),
		"--bt-seed-unverified=true", "--seed-ratio=0.0", "--check-integrity=false", b.torrent)...)
	peer := exec.Command("aria2c", append(common(peerDir, freePort()),
		"--seed-time=0", "--on-bt-download-complete="+hook, b.torrent)...)
	return b.timed(seeder, peer, nil, func(p *proc) error {
		for {
			if _, err := os.Stat(marker); err == nil {
				return nil
			}
			if p.exited() {
				if _, err := os.Stat(marker); err == nil {
					return nil
				}
				return fmt.Errorf("aria2c exited before completing: %s", p.tail())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}, filepath.Join(peerDir, "artifact.bin"))
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cpuSeconds reads a process's user+system CPU time from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ on Linux
	return (ut + st) / clockTicks, nil
}

func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return fmt.Errorf("downloaded file: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 4<<20), make([]byte, 4<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || string(ba[:na]) != string(bb[:nb]) {
			return fmt.Errorf("%s differs from %s", b, a)
		}
		if ea != nil || eb != nil {
			if (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF) {
				return nil
			}
			return errors.Join(ea, eb)
		}
	}
}

// proc is a running client with its output lines.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	last  []string
}

func startProc(name string, cmd *exec.Cmd, verbose bool) (*proc, error) {
	p := &proc{name: name, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if verbose {
				fmt.Fprintf(os.Stderr, "[%s] %s\n", name, l)
			}
			select {
			case p.lines <- l:
			default: // nobody waits for lines; keep going
			}
		}
		pr.Close()
		close(p.lines)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) tail() string { return strings.Join(p.last, " | ") }

// waitLine reads output until match returns true.
func (p *proc) waitLine(match func(string) bool) error {
	timeout := time.After(10 * time.Minute)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return fmt.Errorf("%s ended without finishing: %s", p.name, p.tail())
			}
			p.last = append(p.last, l)
			if len(p.last) > 5 {
				p.last = p.last[1:]
			}
			if match(l) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("%s did not finish in 10 minutes", p.name)
		}
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
