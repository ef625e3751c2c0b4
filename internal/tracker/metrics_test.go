package tracker

import (
	"context"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/murder-deploy/murder/internal/metrics/metricstest"
)

// sample names one series of a scrape: a metric and label pairs.
type sample struct {
	name   string
	labels []string
}

func announces(event, result string) sample {
	return sample{"murder_tracker_announces_total", []string{"event", event, "result", result}}
}

var (
	mTorrents      = sample{name: "murder_tracker_torrents"}
	mPeers         = sample{name: "murder_tracker_peers"}
	mSeeders       = sample{name: "murder_tracker_seeders"}
	mLatency       = sample{name: "murder_tracker_announce_duration_seconds"}
	mScrapesOK     = sample{"murder_tracker_scrapes_total", []string{"result", "ok"}}
	mScrapesFailed = sample{"murder_tracker_scrapes_total", []string{"result", "failure"}}
	mBadAnnounce   = sample{"murder_tracker_malformed_requests_total", []string{"endpoint", "announce"}}
	mBadScrape     = sample{"murder_tracker_malformed_requests_total", []string{"endpoint", "scrape"}}
)

// checkMetrics scrapes url and compares every series of want, all of which
// must exist.
func checkMetrics(t *testing.T, step, url string, want map[*sample]float64) {
	t.Helper()
	fams := metricstest.Scrape(t, url)
	for s, w := range want {
		got, ok := fams.Value(s.name, s.labels...)
		if !ok {
			t.Errorf("%s: no series %s%v", step, s.name, s.labels)
			continue
		}
		if got != w {
			t.Errorf("%s: %s%v = %v, want %v", step, s.name, s.labels, got, w)
		}
	}
}

func TestServerMetrics(t *testing.T) {
	_, base := startServer(t, Config{})
	ctx := context.Background()
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
	ih := hash20("metrics")
	announce := func(name string, left int64, event string) func() {
		return func() {
			if _, err := c.Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: hash20(name), Port: 7001, Left: left, Event: event}); err != nil {
				t.Fatalf("announce %s: %v", name, err)
			}
		}
	}
	startedOK, noneOK, completedOK, stoppedOK := announces("started", "ok"), announces("none", "ok"), announces("completed", "ok"), announces("stopped", "ok")
	startedFailed, noneFailed := announces("started", "failure"), announces("none", "failure")
	// Each step changes the series it lists; the others keep their value.
	steps := []struct {
		name string
		do   func()
		set  map[*sample]float64
	}{
		{"nothing yet", func() {}, map[*sample]float64{
			&startedOK: 0, &noneOK: 0, &completedOK: 0, &stoppedOK: 0, &startedFailed: 0, &noneFailed: 0,
			&mTorrents: 0, &mPeers: 0, &mSeeders: 0, &mLatency: 0,
			&mScrapesOK: 0, &mScrapesFailed: 0, &mBadAnnounce: 0, &mBadScrape: 0,
		}},
		{"leecher starts", announce("leecher", 10, EventStarted), map[*sample]float64{&startedOK: 1, &mTorrents: 1, &mPeers: 1, &mLatency: 1}},
		{"seeder starts", announce("seeder", 0, EventStarted), map[*sample]float64{&startedOK: 2, &mPeers: 2, &mSeeders: 1, &mLatency: 2}},
		{"leecher re-announces", announce("leecher", 5, ""), map[*sample]float64{&noneOK: 1, &mLatency: 3}},
		{"leecher completes", announce("leecher", 0, EventCompleted), map[*sample]float64{&completedOK: 1, &mSeeders: 2, &mLatency: 4}},
		{"seeder stops", announce("seeder", 0, EventStopped), map[*sample]float64{&stoppedOK: 1, &mPeers: 1, &mSeeders: 1, &mLatency: 5}},
		{"announce without port", func() {
			httpGet(t, base+"/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&left=1&event=started")
		}, map[*sample]float64{&mBadAnnounce: 1}},
		{"scrape with a short info hash", func() { httpGet(t, base+"/scrape?info_hash=short") }, map[*sample]float64{&mBadScrape: 1}},
		{"scrape", func() {
			if _, err := c.Scrape(ctx, ih); err != nil {
				t.Fatal(err)
			}
		}, map[*sample]float64{&mScrapesOK: 1}},
		{"full scrape refused", func() {
			if _, err := c.Scrape(ctx); !errors.Is(err, ErrFailure) {
				t.Fatalf("full scrape: got %v, want a failure reason", err)
			}
		}, map[*sample]float64{&mScrapesFailed: 1}},
		{"unknown event counts as none", func() {
			httpGet(t, base+"/announce?"+rawQuery(ih, hash20("paused"), 7002, 3, "&event=paused"))
		}, map[*sample]float64{&noneOK: 2, &mPeers: 2, &mLatency: 6}},
	}
	want := map[*sample]float64{}
	for _, s := range steps {
		s.do()
		for k, v := range s.set {
			want[k] = v
		}
		checkMetrics(t, s.name, base+"/metrics", want)
	}
	// The process collectors are there too.
	if fams := metricstest.Scrape(t, base+"/metrics"); fams.Type("process_resident_memory_bytes") != "gauge" || fams.Type("go_goroutines") != "gauge" {
		t.Errorf("process_resident_memory_bytes or go_goroutines missing")
	}
}

// flakyStore is a Store without Counts whose calls fail while down is set.
type flakyStore struct {
	inner Store
	down  atomic.Bool
}

var errDown = errors.New("store down")

func (f *flakyStore) Announce(ctx context.Context, a *PeerAnnounce, dst []Peer) ([]Peer, ScrapeStats, error) {
	if f.down.Load() {
		return dst, ScrapeStats{}, errDown
	}
	return f.inner.Announce(ctx, a, dst)
}

func (f *flakyStore) Scrape(ctx context.Context, ih [][20]byte) (map[[20]byte]ScrapeStats, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.inner.Scrape(ctx, ih)
}

// TestServerMetricsFailures counts refused announces and scrapes, and the
// gauges of a store that cannot count itself.
func TestServerMetricsFailures(t *testing.T) {
	dir := t.TempDir()
	allowed := writeTorrent(t, dir, "a.torrent", "a")
	store := &flakyStore{inner: NewMemStore(MemStoreConfig{})}
	_, base := startServer(t, Config{AllowDir: dir, Store: store})
	ctx := context.Background()
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
	announce := func(ih [20]byte, name string, left int64, event string) error {
		_, err := c.Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: hash20(name), Port: 7001, Left: left, Event: event})
		return err
	}
	if err := announce(allowed, "p1", 0, EventStarted); err != nil {
		t.Fatal(err)
	}
	if err := announce(allowed, "p2", 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := announce(hash20("not allowed"), "p3", 1, EventStarted); err == nil {
		t.Fatal("announce of an untracked torrent succeeded")
	}
	if _, err := c.Scrape(ctx, hash20("not allowed")); err == nil {
		t.Fatal("scrape of an untracked torrent succeeded")
	}
	checkMetrics(t, "store up", base+"/metrics", map[*sample]float64{
		ptr(announces("started", "ok")): 1, ptr(announces("none", "ok")): 1, ptr(announces("started", "failure")): 1,
		&mScrapesFailed: 1, &mScrapesOK: 0, &mTorrents: 1, &mPeers: 2, &mSeeders: 1, &mLatency: 3,
	})

	store.down.Store(true)
	if err := announce(allowed, "p2", 1, ""); err == nil {
		t.Fatal("announce succeeded with the store down")
	}
	fams := metricstest.Scrape(t, base+"/metrics")
	if v, _ := fams.Value("murder_tracker_announces_total", "event", "none", "result", "failure"); v != 1 {
		t.Errorf("store down: none/failure announces = %v, want 1", v)
	}
	if _, ok := fams.Value("murder_tracker_peers"); ok {
		t.Errorf("store down: peers gauge served, want it left out")
	}
}

func ptr[T any](v T) *T { return &v }

func TestSwarmMetrics(t *testing.T) {
	_, base := startServer(t, Config{})
	ctx := context.Background()
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
	ih := hash20("swarm-metrics-torrent")
	hexHash := hex.EncodeToString(ih[:])
	announce := func(peer string, left int64, event string) {
		t.Helper()
		if _, err := c.Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: hash20(peer), Port: 7001, Left: left, Event: event, Name: "m.tgz"}); err != nil {
			t.Fatalf("announce %s: %v", peer, err)
		}
	}
	labels := func(more ...string) []string { return append([]string{"info_hash", hexHash, "name", "m.tgz"}, more...) }
	seeding := sample{"murder_tracker_swarm_peers", labels("state", "seeding")}
	downloading := sample{"murder_tracker_swarm_peers", labels("state", "downloading")}
	progress := sample{"murder_tracker_swarm_progress_ratio", labels()}
	done := sample{"murder_tracker_swarm_deploy_hosts_done", labels()}

	announce("seed", 0, EventStarted)
	announce("peer", 100, EventStarted)
	checkMetrics(t, "deploy started", base+"/metrics", map[*sample]float64{&seeding: 1, &downloading: 1, &progress: 0.5, &done: 0})
	announce("peer", 0, EventCompleted)
	checkMetrics(t, "peer done", base+"/metrics", map[*sample]float64{&seeding: 2, &downloading: 0, &progress: 1, &done: 1})

	// A swarm with no live peer leaves the metrics.
	announce("peer", 0, EventStopped)
	announce("seed", 0, EventStopped)
	fams := metricstest.Scrape(t, base+"/metrics")
	if v, ok := fams.Value(seeding.name, seeding.labels...); ok {
		t.Errorf("after every peer stopped: %s%v = %v, want no series", seeding.name, seeding.labels, v)
	}
}
