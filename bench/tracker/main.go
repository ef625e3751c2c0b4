// Command tracker is a load generator for murder's tracker, optionally run
// side by side with Debian's opentracker.
//
// It starts each tracker as its own process on a loopback port, announces
// every peer of a synthetic population once (the fill phase: started events
// that build the swarms), then re-announces random peers (the steady phase)
// until a request count or a time limit is reached, and reports announces
// per second, latency percentiles and the tracker's resident memory.
//
// Requests go over raw TCP with a prebuilt HTTP request per peer, so the
// generator spends little CPU of its own. opentracker closes the connection
// after each reply, so it is measured with one connection per request;
// murder is measured that way too and with keep-alive connections.
//
//	go run ./bench/tracker                      # murder and, if installed, opentracker
//	go run ./bench/tracker -opentracker=""      # murder alone
//	go run ./bench/tracker -store redis         # also murder on a redis-server of its own
//	go run ./bench/tracker -store redis://HOST:PORT/DB  # on that Redis; its DB is emptied before each run
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/murder-deploy/murder/internal/testenv"
)

type options struct {
	murder      string
	baseline    string
	opentracker string
	torrents    int
	peers       int
	conns       int
	requests    int
	duration    time.Duration
	numWant     int
	rounds      int
	store       string
	storeOnly   bool
	perRequest  bool
}

func main() {
	var o options
	flag.StringVar(&o.murder, "murder", "", "murder binary to test (default: go build ./cmd/murder into a temp dir)")
	flag.StringVar(&o.baseline, "baseline", "", "another murder binary (an older build) to run beside -murder as the same contenders, with the ratio of the two printed")
	flag.StringVar(&o.opentracker, "opentracker", "opentracker", "opentracker binary to compare with; empty to skip")
	flag.IntVar(&o.torrents, "torrents", 1000, "torrents in the synthetic population")
	flag.IntVar(&o.peers, "peers", 100000, "peers in the synthetic population, spread evenly over the torrents")
	flag.IntVar(&o.conns, "conns", 16, "concurrent client connections")
	flag.IntVar(&o.requests, "requests", 300000, "most announces of a steady phase")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "longest steady phase")
	flag.IntVar(&o.numWant, "numwant", 50, "numwant of every announce")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each round runs every contender once, in alternating order")
	flag.StringVar(&o.store, "store", "", `also measure murder on Redis: "redis" starts Debian's redis-server on a free port for each run; a redis:// URL uses that server and empties its DB (FLUSHDB) before each run`)
	flag.BoolVar(&o.storeOnly, "store-only", false, "with -store, measure only murder on Redis, with keep-alive")
	flag.BoolVar(&o.perRequest, "conn-per-request", true, "also measure murder (in memory) with a connection per request, as opentracker is")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench/tracker: %v\n", err)
		os.Exit(1)
	}
}

// contender is one tracker set-up under test.
type contender struct {
	name      string
	bin       string // the murder binary, for murder's contenders
	keepAlive bool
	start     func(port int) (*exec.Cmd, error)
	// redis, when set, readies an empty Redis for a run and returns its
	// URL, a function that reads the memory it uses, and one that stops it.
	redis func() (url string, used func() int64, stop func(), err error)
}

type result struct {
	contender string
	phase     string
	requests  int
	errors    int
	elapsed   time.Duration
	p50, p99  time.Duration
	p999      time.Duration
	rssKiB    int64
	hwmKiB    int64
	// baseKiB is the tracker's RSS before the fill phase; redisKiB is
	// Redis's used_memory after the steady phase, when on Redis.
	baseKiB  int64
	redisKiB int64
}

func run(o options) error {
	if o.torrents <= 0 || o.peers < o.torrents || o.conns <= 0 || o.requests <= 0 || o.rounds <= 0 {
		return errors.New("want torrents > 0, peers >= torrents, conns, requests and rounds > 0")
	}
	tmp, err := os.MkdirTemp("", "murder-bench-tracker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.murder == "" {
		fmt.Fprintln(os.Stderr, "building murder ...")
		if o.murder, err = testenv.BuildMurder(tmp); err != nil {
			return err
		}
	}
	pop := newPopulation(o)

	murderStarter := func(bin, store string) func(int) (*exec.Cmd, error) {
		return func(port int) (*exec.Cmd, error) {
			cmd := exec.Command(bin, "tracker", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
				"--interval", "30m", "--log-level", "warn", "--store", store)
			cmd.Stderr = os.Stderr
			return cmd, cmd.Start()
		}
	}
	var contenders []contender
	builds := []struct{ prefix, bin string }{{"murder", o.murder}}
	if o.baseline != "" {
		builds = append(builds, struct{ prefix, bin string }{"baseline", o.baseline})
	}
	for _, b := range builds {
		if !o.storeOnly {
			contenders = append(contenders, contender{name: b.prefix + " keep-alive", bin: b.bin, keepAlive: true, start: murderStarter(b.bin, "memory")})
			if o.perRequest {
				contenders = append(contenders, contender{name: b.prefix + " conn/request", bin: b.bin, start: murderStarter(b.bin, "memory")})
			}
		}
		if o.store != "" {
			contenders = append(contenders, contender{name: b.prefix + " redis keep-alive", bin: b.bin, keepAlive: true, redis: redisStarter(o.store, tmp)})
		}
	}
	if o.opentracker != "" && !o.storeOnly {
		if path, err := exec.LookPath(o.opentracker); err != nil {
			fmt.Fprintf(os.Stderr, "opentracker not found (%v); measuring murder alone\n", err)
		} else {
			start, err := opentrackerStarter(path, filepath.Join(tmp, "ot"), pop)
			if err != nil {
				return err
			}
			contenders = append(contenders, contender{name: "opentracker conn/request", start: start})
		}
	}
	fmt.Printf("population: %d torrents x %d peers (%d per torrent, 1 in 5 a seeder); numwant %d; %d connections; steady phase <= %d announces or %s\n",
		o.torrents, o.peers, o.peers/o.torrents, o.numWant, o.conns, o.requests, o.duration)

	var results []result
	for r := range o.rounds {
		order := slices.Clone(contenders)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			exec.Command("sync").Run()
			time.Sleep(time.Second)
			res, err := measure(o, pop, c)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			for _, x := range res {
				printResult(r+1, x)
			}
			results = append(results, res...)
		}
	}
	fmt.Println("\nmedians over rounds (steady phase):")
	rate := map[string]float64{}
	for _, c := range contenders {
		var rates, p50s, p99s []float64
		var rss, perPeer, redisMem int64
		for _, x := range results {
			if x.contender == c.name && x.phase == "steady" {
				rates = append(rates, float64(x.requests)/x.elapsed.Seconds())
				p50s = append(p50s, float64(x.p50))
				p99s = append(p99s, float64(x.p99))
				rss = max(rss, x.rssKiB)
				perPeer = max(perPeer, (x.rssKiB-x.baseKiB)*1024/int64(o.peers))
				redisMem = max(redisMem, x.redisKiB)
			}
		}
		rate[c.name] = median(rates)
		fmt.Printf("  %-26s %9.0f announces/s  p50 %-9s p99 %-9s max RSS %d MiB (%d B/peer over the empty tracker)", c.name, median(rates),
			time.Duration(median(p50s)).Round(time.Microsecond), time.Duration(median(p99s)).Round(time.Microsecond), rss/1024, perPeer)
		if redisMem > 0 {
			fmt.Printf(", Redis used_memory %d MiB (%d B/peer)", redisMem/1024, redisMem*1024/int64(o.peers))
		}
		fmt.Println()
	}
	if o.baseline != "" {
		fmt.Println("\n-murder against -baseline (median announces/s, steady phase):")
		for _, c := range contenders {
			if name, ok := strings.CutPrefix(c.name, "murder "); ok {
				fmt.Printf("  %-26s %.3f\n", name, rate[c.name]/rate["baseline "+name])
			}
		}
	}
	return nil
}

func printResult(round int, x result) {
	fmt.Printf("round %d  %-26s %-6s %7d req %5d err  %9.0f announces/s  p50 %-9s p99 %-9s p99.9 %-9s RSS %4d MiB (peak %d MiB, empty %d MiB)",
		round, x.contender, x.phase, x.requests, x.errors, float64(x.requests)/x.elapsed.Seconds(),
		x.p50.Round(time.Microsecond), x.p99.Round(time.Microsecond), x.p999.Round(time.Microsecond), x.rssKiB/1024, x.hwmKiB/1024, x.baseKiB/1024)
	if x.redisKiB > 0 {
		fmt.Printf(" Redis %d MiB", x.redisKiB/1024)
	}
	fmt.Println()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// population is the synthetic set of torrents and peers, with each peer's
// requests prebuilt.
type population struct {
	hashes  [][20]byte
	started [][]byte // per peer: announce with event=started
	regular [][]byte // per peer: announce without event
}

func newPopulation(o options) *population {
	p := &population{hashes: make([][20]byte, o.torrents)}
	for i := range p.hashes {
		rand.Read(p.hashes[i][:])
	}
	for i := range o.peers {
		var id [20]byte
		copy(id[:], "-BN0001-")
		rand.Read(id[8:])
		ih := p.hashes[i%o.torrents]
		left := 1 << 30
		if i%5 == 0 {
			left = 0
		}
		// Each peer has a key of its own (BEP 7), as murder's peers do.
		q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&compact=1&numwant=%d&key=%08X",
			escape(ih[:]), escape(id[:]), 10000+i/o.torrents, left, o.numWant, mrand.Uint32())
		p.started = append(p.started, []byte("GET /announce?"+q+"&event=started"))
		p.regular = append(p.regular, []byte("GET /announce?"+q))
	}
	return p
}

func escape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "%%%02X", c)
	}
	return s.String()
}

// opentrackerStarter prepares opentracker's chroot directory with a
// whitelist of the population's info hashes.
func opentrackerStarter(path, dir string, pop *population) (func(int) (*exec.Cmd, error), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	var wl bytes.Buffer
	for _, h := range pop.hashes {
		fmt.Fprintf(&wl, "%x\n", h)
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist"), wl.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return func(port int) (*exec.Cmd, error) {
		// opentracker chroots into -d, so the whitelist path is inside it.
		cmd := exec.Command(path, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-P", strconv.Itoa(port),
			"-d", dir, "-w", "/whitelist")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		return cmd, cmd.Start()
	}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// measure starts the contender's tracker, runs both phases and stops it.
func measure(o options, pop *population, c contender) ([]result, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	start := c.start
	var redisUsed func() int64
	if c.redis != nil {
		url, used, stop, err := c.redis()
		if err != nil {
			return nil, err
		}
		defer stop()
		redisUsed = used
		start = func(port int) (*exec.Cmd, error) {
			cmd := exec.Command(c.bin, "tracker", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
				"--interval", "30m", "--log-level", "warn", "--store", url)
			cmd.Stderr = os.Stderr
			return cmd, cmd.Start()
		}
	}
	cmd, err := start(port)
	if err != nil {
		return nil, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitListening(addr); err != nil {
		return nil, err
	}
	// opentracker needs a moment to read its whitelist after it listens.
	time.Sleep(500 * time.Millisecond)

	base, _ := memory(cmd.Process.Pid)
	fill := func(i int) []byte { return pop.started[i] }
	var next atomic.Int64
	// The fill phase may take as long as 1,000 announces/s would.
	fillLimit := max(time.Minute, time.Duration(len(pop.started))*time.Millisecond)
	fillRes := load(o.conns, len(pop.started), fillLimit, addr, c.keepAlive, func() []byte {
		return fill(int(next.Add(1)-1) % len(pop.started))
	})
	fillRes.contender, fillRes.phase = c.name, "fill"
	steady := load(o.conns, o.requests, o.duration, addr, c.keepAlive, func() []byte {
		return pop.regular[mrand.IntN(len(pop.regular))]
	})
	steady.contender, steady.phase = c.name, "steady"
	fillRes.rssKiB, fillRes.hwmKiB = memory(cmd.Process.Pid)
	steady.rssKiB, steady.hwmKiB = fillRes.rssKiB, fillRes.hwmKiB
	fillRes.baseKiB, steady.baseKiB = base, base
	if redisUsed != nil {
		steady.redisKiB = redisUsed() / 1024
	}
	if fillRes.errors > fillRes.requests/100 || steady.errors > steady.requests/100 {
		return nil, fmt.Errorf("too many failed announces: %d in fill, %d in steady", fillRes.errors, steady.errors)
	}
	return []result{fillRes, steady}, nil
}

// redisStarter readies an empty Redis for each run: a redis-server of its
// own on a free port when store is "redis", else the server at the URL
// store with its DB emptied.
func redisStarter(store, tmp string) func() (string, func() int64, func(), error) {
	return func() (string, func() int64, func(), error) {
		url := store
		stop := func() {}
		if store == "redis" {
			port, err := freePort()
			if err != nil {
				return "", nil, nil, err
			}
			dir, err := os.MkdirTemp(tmp, "redis-")
			if err != nil {
				return "", nil, nil, err
			}
			r := testenv.NewRedis(dir, fmt.Sprintf("127.0.0.1:%d", port))
			if err := r.Start(); err != nil {
				return "", nil, nil, err
			}
			url, stop = r.URL(), r.Stop
		}
		opts, err := redis.ParseURL(url)
		if err != nil {
			stop()
			return "", nil, nil, err
		}
		rdb := redis.NewClient(opts)
		ctx := context.Background()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			rdb.Close()
			stop()
			return "", nil, nil, fmt.Errorf("redis %s: %w", url, err)
		}
		used := func() int64 {
			info, err := rdb.InfoMap(ctx, "memory").Result()
			if err != nil {
				return 0
			}
			n, _ := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
			return n
		}
		return url, used, func() { rdb.Close(); stop() }, nil
	}
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tracker did not listen on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// memory reads a process's resident and peak resident memory in KiB.
func memory(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			hwm = n
		}
	}
	return rss, hwm
}

// load sends up to total announces from conns clients, for at most limit.
func load(conns, total int, limit time.Duration, addr string, keepAlive bool, next func() []byte) result {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var sent atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, conns)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			cl := &client{addr: addr, keepAlive: keepAlive}
			defer cl.close()
			for ctx.Err() == nil && sent.Add(1) <= int64(total) {
				t0 := time.Now()
				if err := cl.announce(next()); err != nil {
					errs.Add(1)
					cl.close()
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	return result{requests: len(all), errors: int(errs.Load()), elapsed: elapsed,
		p50: pct(0.50), p99: pct(0.99), p999: pct(0.999)}
}

// client is one load-generating connection.
type client struct {
	addr      string
	keepAlive bool
	conn      net.Conn
	r         *bufio.Reader
	buf       []byte
	body      []byte
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// announce sends one prebuilt request line and reads the whole reply.
func (c *client) announce(reqLine []byte) error {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return err
		}
		c.conn = conn
		if c.r == nil {
			c.r = bufio.NewReaderSize(conn, 16<<10)
		} else {
			c.r.Reset(conn)
		}
	}
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.buf = append(c.buf[:0], reqLine...)
	c.buf = append(c.buf, " HTTP/1.1\r\nHost: 127.0.0.1\r\n"...)
	if !c.keepAlive {
		c.buf = append(c.buf, "Connection: close\r\n"...)
	}
	c.buf = append(c.buf, "\r\n"...)
	if _, err := c.conn.Write(c.buf); err != nil {
		return err
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(status, []byte("HTTP/1.0 200")) {
		return fmt.Errorf("status %q", bytes.TrimSpace(status))
	}
	length := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	var body []byte
	if length >= 0 {
		if cap(c.body) < length {
			c.body = make([]byte, length)
		}
		body = c.body[:length]
		if _, err := io.ReadFull(c.r, body); err != nil {
			return err
		}
	} else {
		if body, err = io.ReadAll(c.r); err != nil {
			return err
		}
		c.close()
	}
	if !bytes.HasPrefix(body, []byte("d8:complete")) {
		return fmt.Errorf("unexpected reply %.60q", body)
	}
	if !c.keepAlive {
		c.close()
	}
	return nil
}
