package tracker

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/metrics/metricstest"
	"github.com/murder-deploy/murder/internal/testenv"
)

// waitScrape polls the tracker until cond holds for ih's counts.
func waitScrape(t *testing.T, c *Client, ih [20]byte, what string, cond func(ScrapeStats) bool) ScrapeStats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := c.Scrape(context.Background(), ih)
		if err == nil && cond(got[ih]) {
			return got[ih]
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: scrape %+v, %v", what, got[ih], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var aria2Quiet = []string{
	"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
	"--console-log-level=warn", "--summary-interval=0", "--download-result=hide", "--interface=127.0.0.1",
	"--disable-ipv6=true",
}

// libtorrentScript joins a torrent as a leecher, reports the peer count of
// the tracker's reply, downloads, and leaves (sending stopped).
const libtorrentScript = `
import sys, time, libtorrent as lt
torrent, save, port = sys.argv[1], sys.argv[2], sys.argv[3]
s = lt.session({
    'listen_interfaces': '127.0.0.1:' + port,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'allow_multiple_connections_per_ip': True,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'alert_mask': lt.alert.category_t.tracker_notification | lt.alert.category_t.error_notification,
})
h = s.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
deadline = time.time() + 60
while time.time() < deadline and not h.status().is_seeding:
    for a in s.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert):
            print('tracker_reply', a.num_peers, flush=True)
        elif isinstance(a, lt.tracker_error_alert):
            print('tracker_error', a.message(), flush=True)
    time.sleep(0.1)
print('seeding' if h.status().is_seeding else 'timeout', flush=True)
time.sleep(1)  # let the completed announce go out
s.remove_torrent(h)
time.sleep(1)  # and the stopped one
`

// TestInterop runs real clients through the tracker: an aria2c seeder and
// an aria2c downloader, then a libtorrent session, with scrape counts checked
// along the way.
func TestInterop(t *testing.T) {
	testenv.Require(t, "aria2c")
	testenv.Require(t, "mktorrent")
	testenv.Require(t, "libtorrent")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	_, base := startServer(t, Config{Interval: 5 * time.Second})
	dir := t.TempDir()
	seedDir, dl1, dl2 := filepath.Join(dir, "seed"), filepath.Join(dir, "dl1"), filepath.Join(dir, "dl2")
	for _, d := range []string{seedDir, dl1, dl2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	payload := make([]byte, 3<<20+12345)
	rand.Read(payload)
	if err := os.WriteFile(filepath.Join(seedDir, "payload.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	torrent := filepath.Join(dir, "payload.torrent")
	m := mktorrent(ctx, t, base, filepath.Join(seedDir, "payload.bin"), torrent)
	ih := [20]byte(m.InfoHash())
	c := NewClient(m.Trackers(), ClientConfig{})

	// aria2c seeds the file it did not download.
	seedCtx, stopSeeder := context.WithCancel(ctx)
	defer stopSeeder()
	var seedLog bytes.Buffer
	seeder := exec.CommandContext(seedCtx, "aria2c", slices.Concat(aria2Quiet, []string{
		"--dir=" + seedDir, "--bt-seed-unverified=true", "--seed-ratio=0.0", "--check-integrity=false",
		fmt.Sprintf("--listen-port=%d", testenv.FreePort(t, "127.0.0.1")), torrent})...)
	seeder.Stdout, seeder.Stderr = &seedLog, &seedLog
	if err := seeder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopSeeder()
		seeder.Wait()
		if t.Failed() {
			t.Logf("aria2c seeder output:\n%s", seedLog.String())
		}
	}()
	waitScrape(t, c, ih, "the aria2c seeder", func(s ScrapeStats) bool { return s.Complete == 1 })

	// A second aria2c downloads it through the tracker.
	out, err := exec.CommandContext(ctx, "aria2c", slices.Concat(aria2Quiet, []string{
		"--dir=" + dl1, "--seed-time=0", fmt.Sprintf("--listen-port=%d", testenv.FreePort(t, "127.0.0.1")), torrent})...).CombinedOutput()
	if err != nil {
		t.Fatalf("aria2c download: %v\n%s", err, out)
	}
	checkFile(t, filepath.Join(dl1, "payload.bin"), payload)
	st := waitScrape(t, c, ih, "the aria2c download to be counted", func(s ScrapeStats) bool { return s.Downloaded == 1 && s.Incomplete == 0 })
	if st.Complete != 1 {
		t.Errorf("after the aria2c download: %+v, want the seeder alone", st)
	}

	// Two more peers that libtorrent must be told about; they keep
	// announcing so they do not expire while libtorrent works.
	fakes := []AnnounceRequest{
		{InfoHash: ih, PeerID: hash20("fake-peer-one"), Port: testenv.FreePort(t, "127.0.0.1"), Left: 1, IP: "127.0.0.2"},
		{InfoHash: ih, PeerID: hash20("fake-peer-two"), Port: testenv.FreePort(t, "127.0.0.1"), Left: 1, IP: "127.0.0.3"},
	}
	fakeCtx, stopFakes := context.WithCancel(ctx)
	fakesDone := make(chan struct{})
	go func() {
		defer close(fakesDone)
		for fakeCtx.Err() == nil {
			for _, f := range fakes {
				c.Announce(fakeCtx, f)
			}
			select {
			case <-fakeCtx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	defer func() { stopFakes(); <-fakesDone }()
	waitScrape(t, c, ih, "the fake peers", func(s ScrapeStats) bool { return s.Incomplete == 2 })

	// libtorrent announces, hears of the seeder and both fake peers (and not
	// of itself), and downloads.
	port := testenv.FreePort(t, "127.0.0.1")
	out, err = exec.CommandContext(ctx, testenv.PythonLT, "-c", libtorrentScript, torrent, dl2, fmt.Sprint(port)).CombinedOutput()
	if err != nil {
		t.Fatalf("libtorrent: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "tracker_reply 3\n") || !strings.HasSuffix(strings.TrimSpace(string(out)), "seeding") {
		t.Fatalf("libtorrent output:\n%s\nwant a tracker reply with 3 peers, then seeding", out)
	}
	checkFile(t, filepath.Join(dl2, "payload.bin"), payload)
	st = waitScrape(t, c, ih, "the libtorrent download to be counted", func(s ScrapeStats) bool { return s.Downloaded == 2 && s.Complete == 1 })
	if st.Incomplete != 2 {
		t.Errorf("after libtorrent left: %+v, want the seeder and the two fake leechers", st)
	}
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d-byte original", path, len(got), len(want))
	}
}

// libtorrentIdleScript joins a torrent that nobody seeds, says when its
// first announce was answered and how many it made, and leaves (sending
// stopped) when a line arrives on stdin.
const libtorrentIdleScript = `
import sys, time, threading, libtorrent as lt
torrent, save, port = sys.argv[1], sys.argv[2], sys.argv[3]
s = lt.session({
    'listen_interfaces': '127.0.0.1:' + port,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'alert_mask': lt.alert.category_t.tracker_notification | lt.alert.category_t.error_notification,
})
h = s.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
quit = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), quit.set()), daemon=True).start()
replies = 0
deadline = time.time() + 60
while time.time() < deadline and not quit.is_set():
    for a in s.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert):
            replies += 1
            print('tracker_reply', replies, flush=True)
        elif isinstance(a, lt.tracker_error_alert):
            print('tracker_error', a.message(), flush=True)
    time.sleep(0.05)
print('replies', replies, flush=True)
s.remove_torrent(h)
time.sleep(1)  # let the stopped announce go out
`

// TestInteropLibtorrentStaysListed pins the reason for learned gaps: told
// to re-announce every second, libtorrent does not (it waits at least
// 300 s), and the tracker keeps it listed well past two intervals instead of
// dropping it until its next announce.
func TestInteropLibtorrentStaysListed(t *testing.T) {
	testenv.Require(t, "mktorrent")
	testenv.Require(t, "libtorrent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const interval = time.Second
	_, base := startServer(t, Config{Interval: interval})
	dir := t.TempDir()
	payload := make([]byte, 64<<10)
	rand.Read(payload)
	if err := os.WriteFile(filepath.Join(dir, "idle.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	torrent := filepath.Join(dir, "idle.torrent")
	m := mktorrent(ctx, t, base, filepath.Join(dir, "idle.bin"), torrent)
	ih := [20]byte(m.InfoHash())
	c := NewClient(m.Trackers(), ClientConfig{})

	save := t.TempDir()
	cmd := exec.CommandContext(ctx, testenv.PythonLT, "-c", libtorrentIdleScript, torrent, save, fmt.Sprint(testenv.FreePort(t, "127.0.0.1")))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			stdin.Close()
			cmd.Wait()
		}
	}()
	waitScrape(t, c, ih, "libtorrent's first announce", func(s ScrapeStats) bool { return s.Incomplete == 1 })

	// Two intervals, and the sweeps that follow them, pass.
	time.Sleep(4 * interval)
	got, err := c.Scrape(ctx, ih)
	if err != nil {
		t.Fatal(err)
	}
	fams := metricstest.Scrape(t, base+"/metrics")
	regular, _ := fams.Value("murder_tracker_announces_total", "event", "none", "result", "ok")
	started, _ := fams.Value("murder_tracker_announces_total", "event", "started", "result", "ok")
	if got[ih].Incomplete != 1 {
		t.Errorf("after %s: scrape %+v, want libtorrent still listed", 4*interval, got[ih])
	}
	if started != 1 || regular != 0 {
		t.Errorf("libtorrent announced %v started and %v regular in %s with a %s interval, want 1 and 0 (it waits 300 s)",
			started, regular, 4*interval, interval)
	}

	stdin.Close()
	stopped = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("libtorrent: %v\n%s", err, out.String())
	}
	waitScrape(t, c, ih, "libtorrent's stopped announce", func(s ScrapeStats) bool { return s.Incomplete == 0 })
	if t.Failed() {
		t.Logf("libtorrent output:\n%s", out.String())
	}
}

// mktorrent makes torrent for file with mktorrent (64 KiB pieces),
// announcing to the tracker at base, and loads it.
func mktorrent(ctx context.Context, t *testing.T, base, file, torrent string) *metainfo.MetaInfo {
	t.Helper()
	if out, err := exec.CommandContext(ctx, "mktorrent", "-a", base+"/announce", "-l", "16",
		"-o", torrent, file).CombinedOutput(); err != nil {
		t.Fatalf("mktorrent: %v\n%s", err, out)
	}
	m, err := metainfo.Load(torrent)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
