// Command deploy measures `murder deploy` end to end on the SSH test bed
// (as root, from the repository root): N peer hosts and one tracker and
// seeder host, each running sshd and capped at -rate both ways, driven
// from an operator host whose link is not capped. Each round times
//
//   - `murder fleet distribute-files` of a binary no host has yet, against
//     the binary's size over one link;
//   - `murder deploy -v` of a directory holding one -size file of random
//     bytes, against the bound F/U (F the .tgz's size, U the link), with
//     the time of each step;
//   - `murder deploy -v` of a -tree-size tree of small files.
//
// With -alt, every run is made with both binaries, alternating which goes
// first, and the medians are compared.
//
// See README.md for how to run it and recent figures.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/testbed"
	"github.com/murder-deploy/murder/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

// Paths inside the hosts: each contender has its own remote_murder_path,
// so that neither finds the other's binary there.
const (
	remoteMurder = "/usr/local/murder"
	dest         = "/srv/murder/out"
)

// contender is one murder build under test.
type contender struct {
	name   string // "murder", or "alt" for -alt
	murder string // the binary, in the work directory
	remote string // its remote_murder_path
	inv    string // its inventory
}

type bench struct {
	n        int
	size     int64
	rate     int64
	treeSize int64
	seedTime time.Duration
	work     string // shared into every host: binary, keys, inventory, sources
	cs       []*contender
	bed      *testbed.Bed
	ops      *testbed.Host
	seeder   *testbed.Host
	peers    []*testbed.Host
	verbose  bool
	busy     float64 // share of the machine's CPU busy during the last murder run
}

func run() error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	n := fs.Int("n", 16, "number of peer hosts (plus one tracker and seeder host)")
	sizeFlag := fs.String("size", "64MiB", "size of the big deploy's one file of random bytes")
	treeFlag := fs.String("tree-size", "3MB", "size of the small deploy's tree (files of 4-60 KiB)")
	rateFlag := fs.String("rate", "64Mbit", "link cap of the seeder and of every peer, each way")
	seedTime := fs.Duration("seed-time", 30*time.Second, "seed_time in murder.toml")
	rounds := fs.Int("rounds", 1, "rounds; each runs distribute-files, the big deploy and the small one")
	murderBin := fs.String("murder", "", "murder binary to use (default: go build ./cmd/murder)")
	altBin := fs.String("alt", "", "a second murder binary (e.g. a build of main) to run every run with as well, alternating which goes first")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "print murder's whole output, the times at which the peers started and were done, and one peer's log")
	only := fs.String("runs", "dist,big,tree", "which runs to make each round: dist (distribute-files), big, tree")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	b := &bench{n: *n, seedTime: *seedTime, verbose: *verbose}
	var err error
	for _, p := range []struct {
		flag string
		v    *int64
	}{{*sizeFlag, &b.size}, {*treeFlag, &b.treeSize}, {*rateFlag, &b.rate}} {
		if *p.v, err = bytesize.ParseRate(p.flag); err == nil && *p.v <= 0 {
			err = fmt.Errorf("bad size or rate %q", p.flag)
		}
		if err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	b.work, err = os.MkdirTemp("", "murder-bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.work)
	os.Chmod(b.work, 0o755)
	main := &contender{name: "murder", murder: filepath.Join(b.work, "murder"), remote: remoteMurder}
	if *murderBin != "" {
		err = copyFile(*murderBin, main.murder)
	} else {
		main.murder, err = testenv.BuildMurder(b.work)
	}
	if err != nil {
		return err
	}
	b.cs = []*contender{main}
	if *altBin != "" {
		alt := &contender{name: "alt", murder: filepath.Join(b.work, "murder-alt"), remote: remoteMurder + "-alt"}
		if err := copyFile(*altBin, alt.murder); err != nil {
			return err
		}
		b.cs = append(b.cs, alt)
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.bed.Close()
	defer b.removeTrees()

	fmt.Printf("bed: %d peers + 1 tracker/seeder, links %s/s each way (operator uncapped), seed_time %s\n",
		b.n, mib(b.rate), b.seedTime)
	sizes := map[*contender]int64{}
	for _, c := range b.cs {
		fi, err := os.Stat(c.murder)
		if err != nil {
			return err
		}
		sizes[c] = fi.Size()
		fmt.Printf("  %s: %s, binary %s, remote_murder_path %s\n", c.name, c.murder, mib(fi.Size()), c.remote)
	}
	dist, big, small := map[*contender][]float64{}, map[*contender][]float64{}, map[*contender][]float64{}
	runs := strings.Split(*only, ",")
	if !slices.Contains(runs, "dist") {
		// The deploys still need murder on the hosts.
		for _, c := range b.cs {
			if _, _, err := b.murderRun(ctx, c, "fleet", "-c", c.inv, "distribute-files"); err != nil {
				return err
			}
		}
	}
	for r := 1; r <= *rounds; r++ {
		// Alternate which contender goes first.
		order := slices.Clone(b.cs)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, c := range order {
			if slices.Contains(runs, "dist") {
				d, err := b.distribute(ctx, c, sizes[c])
				if err != nil {
					return err
				}
				dist[c] = append(dist[c], d)
			}
		}
		for _, c := range order {
			if slices.Contains(runs, "big") {
				x, err := b.deploy(ctx, c, fmt.Sprintf("big%d", r), "big", true)
				if err != nil {
					return err
				}
				big[c] = append(big[c], x)
			}
		}
		for _, c := range order {
			if slices.Contains(runs, "tree") {
				y, err := b.deploy(ctx, c, fmt.Sprintf("tree%d", r), "tree", false)
				if err != nil {
					return err
				}
				small[c] = append(small[c], y)
			}
		}
	}
	fmt.Printf("\nmedians over %d round(s):\n", *rounds)
	for _, c := range b.cs {
		fmt.Printf("  %-6s distribute-files %.2fx its bound; big deploy %.2fx F/U; small tree %.2f s\n",
			c.name, median(dist[c]), median(big[c]), median(small[c]))
	}
	if len(b.cs) == 2 {
		m, a := b.cs[0], b.cs[1]
		fmt.Printf("  murder/alt: distribute-files %.2f, big deploy %.2f, small tree %.2f\n",
			ratio(median(dist[m]), median(dist[a])), ratio(median(big[m]), median(big[a])), ratio(median(small[m]), median(small[a])))
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, data, 0o755)
	}
	return err
}

// setup builds the bed, starts sshd in every host but the operator's,
// and writes the sources and the inventory.
func (b *bench) setup(ctx context.Context) error {
	bed, err := testbed.New(ctx, testbed.Config{Hosts: b.n + 2, Link: testbed.Link{Up: b.rate, Down: b.rate}, Share: []string{b.work}})
	if err != nil {
		return err
	}
	b.bed = bed
	b.ops, b.seeder, b.peers = bed.Host(0), bed.Host(1), bed.Hosts()[2:]
	if err := b.ops.SetLink(ctx, testbed.Link{}); err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	key := filepath.Join(b.work, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	var known, peers strings.Builder
	for _, h := range bed.Hosts()[1:] {
		s, err := h.StartSSHD(ctx, string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		if err != nil {
			return err
		}
		known.WriteString(s.KnownHostsLine() + "\n")
		if h != b.seeder {
			fmt.Fprintf(&peers, "%q, ", "root@"+h.Addr().String())
		}
	}
	knownPath := filepath.Join(b.work, "known_hosts")
	if err := os.WriteFile(knownPath, []byte(known.String()), 0o600); err != nil {
		return err
	}
	seeder := "root@" + b.seeder.Addr().String()
	for _, c := range b.cs {
		c.inv = filepath.Join(b.work, c.name+".toml")
		inv := fmt.Sprintf(`remote_murder_path = %q
temp_path = "/tmp/murder"
tracker_port = 8998
seed_time = %q
peer_timeout = "10m"

[ssh]
identity_files = [%q]
known_hosts = %q

[roles]
tracker = %q
seeder = %q
peers = [%s]
`, c.remote, b.seedTime, key, knownPath, seeder, seeder, strings.TrimSuffix(peers.String(), ", "))
		if err := os.WriteFile(c.inv, []byte(inv), 0o644); err != nil {
			return err
		}
	}
	if err := writeRandom(filepath.Join(b.work, "big", "data.bin"), b.size); err != nil {
		return err
	}
	for i, left := 0, b.treeSize; left > 0; i++ {
		n := min(left, int64(4<<10+(i*7919)%(56<<10)))
		if err := writeRandom(filepath.Join(b.work, "tree", fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%03d", i)), n); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

func writeRandom(path string, n int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// murderRun runs murder on the operator's host and returns its output
// and wall time.
func (b *bench) murderRun(ctx context.Context, c *contender, args ...string) (string, time.Duration, error) {
	cmd := b.ops.Command(ctx, c.murder, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + b.work}
	var out, log strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &log // -v's debug log
	cpu0 := readCPU()
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	b.busy = readCPU().busySince(cpu0)
	if b.verbose {
		fmt.Print(out.String())
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, `msg="peer `) {
				fmt.Println("  " + l)
			}
		}
	}
	if err != nil {
		return out.String(), took, fmt.Errorf("murder %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), took, nil
}

// quiesce flushes the disk and lets the machine settle before a timed run.
func quiesce() {
	exec.Command("sync").Run()
	time.Sleep(2 * time.Second)
}

// distribute times distribute-files of a binary that no host has, and
// returns its ratio to the binary's size over one link.
func (b *bench) distribute(ctx context.Context, c *contender, size int64) (float64, error) {
	for _, h := range b.bed.Hosts()[1:] {
		os.Remove(h.Path(c.remote + "/murder"))
	}
	quiesce()
	_, took, err := b.murderRun(ctx, c, "fleet", "-c", c.inv, "distribute-files")
	if err != nil {
		return 0, err
	}
	bound := seconds(float64(size) / float64(b.rate))
	fmt.Printf("\n[%s] distribute-files to %d hosts: %s, links' bound %s (binary/U): %.2fx; cpu busy %.0f%%\n", c.name, b.n+1, round(took), round(bound), took.Seconds()/bound.Seconds(), 100*b.busy)
	return took.Seconds() / bound.Seconds(), nil
}

var (
	sizeLine    = regexp.MustCompile(`(?m)^\s+size: (\d+) bytes`)
	inPlaceLine = regexp.MustCompile(`(?m)^files in place on the last of them after (\S+); whole run (\S+)$`)
	stepLine    = regexp.MustCompile(`(?m)^  ([a-z-]+)\s+(\S+)\s+(\S+)$`)
)

// deploy runs murder deploy of the big or the small tree, prints the
// whole run, files in place and each step, and returns the whole run
// over F/U (ratio) or in seconds (not ratio).
func (b *bench) deploy(ctx context.Context, c *contender, tag, src string, ratio bool) (float64, error) {
	tag += "-" + c.name
	defer func() {
		if b.verbose {
			// One peer's own log, to see where its time went.
			h := b.peers[len(b.peers)-1]
			if log, err := os.ReadFile(h.Path("/tmp/murder/murder-peer-" + tag + ".log")); err == nil {
				fmt.Printf("log of the peer on %s:\n%s", h.Addr(), log)
			}
		}
		// Stop the peers seeding on, and make room for the next run:
		// the big file goes at once, the trees at the end (see
		// removeTrees).
		b.murderRun(ctx, c, "fleet", "-c", c.inv, "stop-all-peering")
		for _, h := range b.peers {
			if ratio {
				os.RemoveAll(h.Path(dest + "/" + tag))
			}
		}
	}()
	var primed testenv.PrimedMemory
	if ratio {
		// Room for every peer's download and its extraction
		// (testenv.PrimeMemory says why).
		var err error
		if primed, err = testenv.PrimeMemory(min(int64(b.n)*2*b.size+256<<20, memAvailable()-2<<30)); err != nil {
			return 0, err
		}
	}
	quiesce()
	primed.Release()
	out, took, err := b.murderRun(ctx, c, "deploy", "-c", c.inv, "-v", "--tag", tag, "--files-path", filepath.Join(b.work, src), "--destination-path", dest)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(out, fmt.Sprintf("deployed to %d/%d hosts", b.n, b.n)) {
		return 0, fmt.Errorf("deploy %s did not reach every host:\n%s", tag, out)
	}
	m := sizeLine.FindStringSubmatch(out)
	ip := inPlaceLine.FindStringSubmatch(out)
	if m == nil || ip == nil {
		return 0, fmt.Errorf("deploy %s: no artifact size or summary in the output:\n%s", tag, out)
	}
	f, _ := strconv.ParseInt(m[1], 10, 64)
	bound := seconds(float64(f) / float64(b.rate))
	fmt.Printf("\n[%s] deploy %s (%s .tgz) to %d peers: whole run %s (murder: %s), files in place %s; bound F/U %s",
		c.name, tag, mib(f), b.n, round(took), ip[2], ip[1], round(bound))
	if ratio {
		inPlace, _ := time.ParseDuration(ip[1])
		fmt.Printf(": whole run %.2fx, files in place %.2fx", took.Seconds()/bound.Seconds(), inPlace.Seconds()/bound.Seconds())
	}
	fmt.Printf("; cpu busy %.0f%%\n", 100*b.busy)
	sc := bufio.NewScanner(strings.NewReader(out[strings.Index(out, "STEP"):]))
	for sc.Scan() {
		if s := stepLine.FindStringSubmatch(sc.Text()); s != nil {
			fmt.Printf("  %-18s start %-8s took %s\n", s[1], s[2], s[3])
		}
	}
	if ratio {
		return took.Seconds() / bound.Seconds(), nil
	}
	return took.Seconds(), nil
}

// memAvailable reads MemAvailable from /proc/meminfo, or returns 0.
func memAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
func round(d time.Duration) time.Duration {
	return d.Round(10 * time.Millisecond)
}
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// removeTrees empties every peer's destination. The bed's hosts share
// this machine's file system; on an ext4 without a journal, as here,
// creating a file skips over the inodes freed in the last minute or more
// (ext4's recently_deleted check), so removing 16 copies of the tree just
// before a run made creating the next run's files about a third of murder's
// CPU in that run (perf). The trees are removed once the runs are over.
func (b *bench) removeTrees() {
	for _, h := range b.peers {
		removeContents(h.Path(dest))
	}
}

// removeContents empties dir, which may be a host's mount point.
func removeContents(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// cpuTimes are the machine's CPU ticks from /proc/stat: idle (with
// iowait) and all.
type cpuTimes struct{ idle, total int64 }

func readCPU() cpuTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	var t cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		t.total += v
		if i == 3 || i == 4 {
			t.idle += v
		}
	}
	return t
}

// busySince is the share of the CPU time since t0 that was not idle.
func (t cpuTimes) busySince(t0 cpuTimes) float64 {
	if t.total <= t0.total {
		return 0
	}
	return 1 - float64(t.idle-t0.idle)/float64(t.total-t0.total)
}
