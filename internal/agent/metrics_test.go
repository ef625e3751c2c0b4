package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/metrics/metricstest"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/swarm"
	"github.com/murder-deploy/murder/internal/testenv"
)

func TestMetricsCollector(t *testing.T) {
	stats := swarm.Stats{BytesDone: 300, BytesTotal: 1000, Downloaded: 310, Uploaded: 120,
		DownRate: 55.5, UpRate: 7, Peers: 3, Banned: 1, Unrequested: 4, Refused: 9,
		Received: swarm.Received{SameRack: 100, SameDatacenter: 200, Remote: 10}}
	tests := []struct {
		name  string
		state string
		ok    bool // a swarm exists
	}{
		{"before the swarm", progress.StateChecking, false},
		{"downloading", progress.StateDownloading, true},
		{"seeding", progress.StateSeeding, true},
		{"no state yet", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(newSwarmCollector("v1", "abc123", func() (swarm.Stats, string, bool) {
				if !tt.ok {
					return swarm.Stats{}, tt.state, false
				}
				return stats, tt.state, true
			}))
			fams := metricstest.Gather(t, reg)
			for _, s := range runStates() {
				want := 0.0
				if s == tt.state {
					want = 1
				}
				got, found := fams.Value("murder_swarm_state", "state", s, "tag", "v1", "info_hash", "abc123")
				if !found || got != want {
					t.Errorf("murder_swarm_state{state=%q} = %v (found %v), want %v", s, got, found, want)
				}
			}
			values := []struct {
				name, typ string
				want      float64
			}{
				{"murder_swarm_downloaded_bytes_total", "counter", 310},
				{"murder_swarm_uploaded_bytes_total", "counter", 120},
				{"murder_swarm_verified_bytes", "gauge", 300},
				{"murder_swarm_size_bytes", "gauge", 1000},
				{"murder_swarm_download_rate_bytes_per_second", "gauge", 55.5},
				{"murder_swarm_upload_rate_bytes_per_second", "gauge", 7},
				{"murder_swarm_peers", "gauge", 3},
				{"murder_swarm_banned_peers_total", "counter", 1},
				{"murder_swarm_unrequested_blocks_total", "counter", 4},
				{"murder_swarm_refused_connections_total", "counter", 9},
			}
			for _, v := range values {
				got, found := fams.Value(v.name, "tag", "v1", "info_hash", "abc123")
				switch {
				case !tt.ok && found:
					t.Errorf("%s served before there is a swarm", v.name)
				case tt.ok && (!found || got != v.want || fams.Type(v.name) != v.typ):
					t.Errorf("%s = %v (found %v, %s), want %v (%s)", v.name, got, found, fams.Type(v.name), v.want, v.typ)
				}
			}
			for from, want := range map[string]float64{"rack": 100, "datacenter": 200, "remote": 10, "unplaced": 0} {
				got, found := fams.Value("murder_swarm_received_bytes_total", "from", from, "tag", "v1", "info_hash", "abc123")
				if tt.ok && (!found || got != want) {
					t.Errorf("murder_swarm_received_bytes_total{from=%q} = %v (found %v), want %v", from, got, found, want)
				}
			}
		})
	}
}

// TestSeedMetrics runs a seeder with --metrics-listen on loopback and
// checks that its counters follow a real download by a peer.
func TestSeedMetrics(t *testing.T) {
	announce := startTracker(t)
	_, art := makeArtifact(t, "m1", announce)
	mi, err := metainfo.Load(art.TorrentPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t, "127.0.0.1")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Seed(ctx, SeedConfig{Torrent: art.TorrentPath, Data: art.ArtifactPath, ListenAddr: "127.0.0.1:0", MetricsAddr: addr})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Seed: %v", err)
		}
	}()
	waitSeeders(t, announce, mi, 1)

	url := "http://" + addr + "/metrics"
	labels := []string{"tag", "m1", "info_hash", mi.InfoHash().String()}
	value := func(fams metricstest.Families, name string, more ...string) float64 {
		t.Helper()
		v, ok := fams.Value(name, append(more, labels...)...)
		if !ok {
			t.Fatalf("no %s%v in the scrape", name, append(more, labels...))
		}
		return v
	}
	before := metricstest.Scrape(t, url)
	for name, want := range map[string]float64{
		"murder_swarm_uploaded_bytes_total":   0,
		"murder_swarm_downloaded_bytes_total": 0,
		"murder_swarm_verified_bytes":         float64(art.Size),
		"murder_swarm_size_bytes":             float64(art.Size),
	} {
		if got := value(before, name); got != want {
			t.Errorf("before the download: %s = %v, want %v", name, got, want)
		}
	}
	if got := value(before, "murder_swarm_state", "state", progress.StateSeeding); got != 1 {
		t.Errorf("before the download: seeding state %v, want 1", got)
	}

	// The seeder is the only source, so it sends at least every byte.
	cfg := peerConfig(t, art.TorrentPath, t.TempDir())
	var got int64
	cfg.Reporter = &events{fn: func(ev progress.Event) {
		if ev.Event == progress.EventDone {
			got = ev.Downloaded
		}
	}}
	if err := Peer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	after := metricstest.Scrape(t, url)
	up := value(after, "murder_swarm_uploaded_bytes_total")
	if up < float64(art.Size) || up < float64(got) {
		t.Errorf("after the download: uploaded %v bytes, want at least the artifact's %d and the %d the peer received", up, art.Size, got)
	}
	if up > 2*float64(art.Size) {
		t.Errorf("after the download: uploaded %v bytes, more than twice the artifact's %d", up, art.Size)
	}
	if d := value(after, "murder_swarm_downloaded_bytes_total"); d != 0 {
		t.Errorf("after the download: the seeder downloaded %v bytes, want 0", d)
	}
}

// TestSeedMetricsBusyPort checks that a metrics address in use fails the
// run at once, naming the flag.
func TestSeedMetricsBusyPort(t *testing.T) {
	_, art := makeArtifact(t, "m2", "http://127.0.0.1:1/announce")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Seed(ctx, SeedConfig{Torrent: art.TorrentPath, ListenAddr: "127.0.0.1:0", MetricsAddr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "--metrics-listen") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Seed with a busy metrics port: %v, want an error naming --metrics-listen", err)
	}
}

// TestPeerMetrics runs a peer with MetricsAddr and scrapes it while it
// seeds on: the whole artifact came in and is verified.
func TestPeerMetrics(t *testing.T) {
	announce := startTracker(t)
	_, art := makeArtifact(t, "m3", announce)
	startSeed(t, announce, art.TorrentPath, art.ArtifactPath)
	mi, err := metainfo.Load(art.TorrentPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t, "127.0.0.1")))
	cfg := peerConfig(t, art.TorrentPath, t.TempDir())
	cfg.MetricsAddr = addr
	cfg.SeedTime = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var scraped metricstest.Families
	var scrapeErr error
	cfg.Reporter = &events{fn: func(ev progress.Event) {
		if ev.Event == progress.EventDone {
			// Scraped from the run's own goroutine, so the run is seeding on.
			scraped, scrapeErr = metricstest.Fetch("http://" + addr + "/metrics")
			cancel()
		}
	}}
	if err := Peer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	labels := []string{"tag", "m3", "info_hash", mi.InfoHash().String()}
	for _, v := range []struct {
		name  string
		extra []string
		want  func(float64) bool
		what  string
	}{
		{"murder_swarm_state", []string{"state", progress.StateSeeding}, func(v float64) bool { return v == 1 }, "1"},
		{"murder_swarm_state", []string{"state", progress.StateDownloading}, func(v float64) bool { return v == 0 }, "0"},
		{"murder_swarm_verified_bytes", nil, func(v float64) bool { return v == float64(art.Size) }, fmt.Sprint(art.Size)},
		{"murder_swarm_size_bytes", nil, func(v float64) bool { return v == float64(art.Size) }, fmt.Sprint(art.Size)},
		{"murder_swarm_downloaded_bytes_total", nil, func(v float64) bool { return v >= float64(art.Size) }, fmt.Sprint(">= ", art.Size)},
	} {
		got, ok := scraped.Value(v.name, append(v.extra, labels...)...)
		if !ok || !v.want(got) {
			t.Errorf("%s%v = %v (found %v), want %s", v.name, v.extra, got, ok, v.what)
		}
	}
	// The endpoint ends with the run.
	if _, err := metricstest.Fetch("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after Peer returned")
	}
}
