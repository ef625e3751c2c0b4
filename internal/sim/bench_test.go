package sim

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/testenv"
)

// The flags of bench/sim/run, which runs TestBench; without -sim.n it is
// skipped.
var (
	benchN        = flag.Int("sim.n", 0, "peers (the seeder not counted); 0 skips TestBench")
	benchSize     = flag.String("sim.size", "64MiB", "artifact size")
	benchRate     = flag.String("sim.rate", "1Gbit", "every host's up and down link")
	benchSeedRate = flag.String("sim.seed-rate", "", "the seeder's link (default: -rate)")
	benchLatency  = flag.Duration("sim.latency", 100*time.Microsecond, "one-way latency into every host")
	benchDCs      = flag.Int("sim.dcs", 1, "datacenters")
	benchWAN      = flag.String("sim.wan", "100Mbit", "each datacenter's WAN link, each way (with -dcs > 1)")
	benchUnplaced = flag.Bool("sim.unplaced", false, "hosts do not tell the tracker their datacenter")
	benchPiece    = flag.String("sim.piece-size", "", "piece length (default: murder's choice)")
	benchSlow     = flag.Float64("sim.slow", 0, "fraction of peers on -slow-rate links")
	benchSlowRate = flag.String("sim.slow-rate", "100Mbit", "link of the slow peers")
	benchLate     = flag.Float64("sim.late", 0, "fraction of peers that start late, within -late-by")
	benchLateBy   = flag.Duration("sim.late-by", 10*time.Second, "how late the late peers start at most")
	benchStop     = flag.Float64("sim.stop", 0, "fraction of peers that stop halfway")
	benchConns    = flag.Int("sim.max-conns", 0, "connection limit of each host (0: the engine's default)")
	benchUpload   = flag.String("sim.max-upload-rate", "", "every host's upload limit, as murder's --max-upload-rate (default: none)")
	benchSeed     = flag.Uint64("sim.seed", 1, "random seed")
	benchJSON     = flag.Bool("sim.json", false, "end with one line of JSON")
	benchTimeout  = flag.Duration("sim.timeout", time.Hour, "give up on peers not done after this long, in virtual time")
	benchLog      = flag.String("sim.log", "", "write every host's debug log (virtual times) to this file")
)

// benchResult is the JSON line of bench/sim/run.
type benchResult struct {
	N            int       `json:"n"`
	Size         int64     `json:"size"`
	Pieces       int       `json:"pieces"`
	RateBps      int64     `json:"rate_bytes_per_s"`
	BoundS       float64   `json:"bound_s"`
	FirstS       float64   `json:"first_s"`
	MedianS      float64   `json:"median_s"`
	P99S         float64   `json:"p99_s"`
	LastS        float64   `json:"last_s"`
	Missing      int       `json:"missing"`
	Stopped      int       `json:"stopped"`
	SeederSentF  float64   `json:"seeder_sent_f"`
	AtBound      float64   `json:"done_at_bound"`
	WANInF       []float64 `json:"wan_in_f,omitempty"`
	WANOutF      []float64 `json:"wan_out_f,omitempty"`
	AnnouncesPS  float64   `json:"announces_per_s"`
	ConnsPerHost float64   `json:"conns_per_host"`
	ReadsPerMiB  float64   `json:"reads_per_mib"`
	WritesPerMiB float64   `json:"writes_per_mib"`
	CPUS         float64   `json:"cpu_s"`
	CPUPerGiB    float64   `json:"cpu_s_per_gib"`
	WallS        float64   `json:"wall_s"`
	MaxRSSMiB    float64   `json:"max_rss_mib"`
}

func TestBench(t *testing.T) {
	if *benchN == 0 {
		t.Skip("bench/sim/run sets -sim.n")
	}
	cfg, rate, err := benchConfig()
	if err != nil {
		t.Fatal(err)
	}
	var logBuf testenv.Buffer
	if *benchLog != "" {
		// Kept in memory until the end: writing to a file as it goes
		// changes the order in which the hosts' goroutines run.
		cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: virtualTime}))
		defer func() {
			if err := os.WriteFile(*benchLog, []byte(logBuf.String()), 0o644); err != nil {
				t.Error(err)
			}
		}()
	}
	wall := time.Now()
	var res Result
	synctest.Test(t, func(t *testing.T) {
		res, err = Run(context.Background(), cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	out := benchResult{
		N: res.Hosts, Size: res.Size, Pieces: res.Pieces, RateBps: rate,
		BoundS: res.Bound.Seconds(), FirstS: res.Quantile(0).Seconds(), MedianS: res.Quantile(0.5).Seconds(),
		P99S: res.Quantile(0.99).Seconds(), LastS: res.Quantile(1).Seconds(), Missing: res.Missing, Stopped: res.Stopped,
		SeederSentF: res.SeedSent, AtBound: res.AtBound, WANInF: res.WANIn, WANOutF: res.WANOut, AnnouncesPS: float64(res.Announces) / res.Virtual.Seconds(),
		ConnsPerHost: res.ConnsPerHost, CPUS: cpu, WallS: time.Since(wall).Seconds(), MaxRSSMiB: float64(ru.Maxrss) / 1024,
	}
	// Per MiB and GiB that reached the peers; none when no peer finished
	// (JSON has no NaN).
	if mib := float64(len(res.Done)) * float64(res.Size) / (1 << 20); mib > 0 {
		out.ReadsPerMiB, out.WritesPerMiB, out.CPUPerGiB = float64(res.Reads)/mib, float64(res.Writes)/mib, cpu/(mib/1024)
	}
	b := out.BoundS
	fmt.Printf("%d peers, %d bytes in %d pieces, links %.0f Mbit/s, bound %.3f s\n", out.N, out.Size, out.Pieces, float64(rate)*8/1e6, b)
	fmt.Printf("first %.3f s (%.3f x bound), median %.3f s (%.3f x), p99 %.3f s (%.3f x), last %.3f s (%.3f x)\n",
		out.FirstS, out.FirstS/b, out.MedianS, out.MedianS/b, out.P99S, out.P99S/b, out.LastS, out.LastS/b)
	fmt.Printf("missing %d, stopped %d, seeder sent %.2f F, %.1f announces/s, %.1f connections per host, %.3f of the artifact done at the bound\n",
		out.Missing, out.Stopped, out.SeederSentF, out.AnnouncesPS, out.ConnsPerHost, out.AtBound)
	if len(out.WANOutF) > 0 {
		fmt.Printf("WAN: into datacenters 2.. %.2f F, out of datacenters 1.. %.2f F\n", out.WANInF, out.WANOutF)
	}
	fmt.Printf("%.1f reads and %.1f writes per MiB delivered, CPU %.1f s (%.2f s per GiB delivered), wall %.1f s, max RSS %.0f MiB\n",
		out.ReadsPerMiB, out.WritesPerMiB, out.CPUS, out.CPUPerGiB, out.WallS, out.MaxRSSMiB)
	fmt.Println("# seconds hosts_done")
	for i, d := range res.Done {
		if i == 0 || i == len(res.Done)-1 || (i+1)%max(1, len(res.Done)/20) == 0 {
			fmt.Printf("%.3f %d\n", d.Seconds(), i+1)
		}
	}
	fmt.Println("# x_bound uplinks_busy downlinks_busy done")
	for _, c := range res.Curve {
		fmt.Printf("%.1f %.2f %.2f %.3f\n", c.At.Seconds()/b, c.Up, c.Down, c.Done)
	}
	if *benchJSON {
		j, _ := json.Marshal(out)
		fmt.Fprintln(os.Stdout, string(j))
	}
	if res.Missing > 0 {
		t.Errorf("%d peers did not finish", res.Missing)
	}
}

// virtualTime logs times as seconds since the bubble's epoch, to the
// microsecond: the simulated swarm's events are microseconds apart.
func virtualTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.String("t", fmt.Sprintf("%.6f", a.Value.Time().Sub(epoch).Seconds()))
	}
	return a
}

// epoch is where testing/synctest's clock starts.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func benchConfig() (Config, int64, error) {
	size, err := bytesize.ParseRate(*benchSize)
	if err != nil {
		return Config{}, 0, fmt.Errorf("-sim.size: %w", err)
	}
	rate, err := bytesize.ParseRate(*benchRate)
	if err != nil {
		return Config{}, 0, fmt.Errorf("-sim.rate: %w", err)
	}
	seedRate := rate
	if *benchSeedRate != "" {
		if seedRate, err = bytesize.ParseRate(*benchSeedRate); err != nil {
			return Config{}, 0, fmt.Errorf("-sim.seed-rate: %w", err)
		}
	}
	wan, err := bytesize.ParseRate(*benchWAN)
	if err != nil {
		return Config{}, 0, fmt.Errorf("-sim.wan: %w", err)
	}
	slow, err := bytesize.ParseRate(*benchSlowRate)
	if err != nil {
		return Config{}, 0, fmt.Errorf("-sim.slow-rate: %w", err)
	}
	var piece int64
	if *benchPiece != "" {
		if piece, err = bytesize.ParseRate(*benchPiece); err != nil {
			return Config{}, 0, fmt.Errorf("-sim.piece-size: %w", err)
		}
	}
	var upload int64
	if *benchUpload != "" {
		if upload, err = bytesize.ParseRate(*benchUpload); err != nil {
			return Config{}, 0, fmt.Errorf("-sim.max-upload-rate: %w", err)
		}
	}
	l := Link{Up: rate, Down: rate, Latency: *benchLatency}
	return Config{
		Hosts: *benchN, Size: size, PieceSize: piece,
		Link: l, SeedLink: Link{Up: seedRate, Down: seedRate, Latency: *benchLatency},
		Datacenters: *benchDCs, WAN: wan, Unplaced: *benchUnplaced,
		Slow: *benchSlow, SlowLink: Link{Up: slow, Down: slow, Latency: *benchLatency},
		Late: *benchLate, LateBy: *benchLateBy, Stop: *benchStop,
		MaxConns: *benchConns, UploadRate: upload, Seed: *benchSeed, Timeout: *benchTimeout,
	}, rate, nil
}
