package pagetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

// hostileName is a torrent name that would run script if the page put it
// in as HTML.
const hostileName = "<img src=x onerror=alert(1)>"

// chromiumFlags are the flags headless Chromium needs on a CI machine.
var chromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("headless", true),
	chromedp.Flag("no-sandbox", true),
	chromedp.Flag("disable-gpu", true),
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("no-first-run", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.WindowSize(1280, 1000),
}

// TestLivePage runs `murder deploy --local 3` with a download limit that
// makes it last about 10 s, opens the tracker's page in Chromium while it
// runs and checks that the swarm appears, that a peer's progress rises
// and reaches done, and that a swarm named hostileName shows its name as
// text. It also reads the running deploy with murder status --json. A
// screenshot of the finished deploy is kept in the test's artifact
// directory: with go test -artifacts -outputdir DIR (as scripts/test.sh
// runs it, DIR being test-artifacts) under DIR/_artifacts; its path is
// logged.
func TestLivePage(t *testing.T) {
	testenv.Require(t, "chromium")
	bin, err := testenv.BuildMurder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	files := t.TempDir()
	// Random, so that the gzipped artifact stays 10 MiB.
	blob := make([]byte, 10<<20)
	rand.Read(blob)
	if err := os.WriteFile(filepath.Join(files, "blob.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	deploy := exec.CommandContext(ctx, bin, "deploy", "--local", "3", "--files-path", files,
		"--destination-path", t.TempDir(), "--tag", "pagetest", "--max-download-rate", "1MB", "--linger", "2m")
	stdout, err := deploy.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	deploy.Stderr = &stderr
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	deployDone := make(chan error, 1)
	addrCh := make(chan string, 1)
	var output strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			output.WriteString(line + "\n")
			if rest, ok := strings.CutPrefix(line, "==> tracker on "); ok {
				addrCh <- strings.TrimSuffix(strings.Fields(rest)[0], ",")
			}
		}
		deployDone <- deploy.Wait()
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-deployDone:
		t.Fatalf("murder deploy ended before starting its tracker: %v\n%s", err, stderr.String())
	case <-ctx.Done():
		t.Fatal("murder deploy did not start its tracker")
	}
	base := "http://" + addr

	// A swarm with a hostile name, announced as murder announces.
	hostile := [20]byte{0xba, 0xd0}
	c := tracker.NewClient([][]string{{base + "/announce"}}, tracker.ClientConfig{})
	if _, err := c.Announce(ctx, tracker.AnnounceRequest{InfoHash: hostile, PeerID: [20]byte{'x'}, Port: 9,
		Left: 100, Event: tracker.EventStarted, Name: hostileName}); err != nil {
		t.Fatal(err)
	}

	// The deploy's swarm once its peers announce, as murder status --json
	// sees it.
	var hash string
	for hash == "" {
		var list tracker.SwarmList
		statusJSON(t, bin, &list, "--tracker", addr, "--json")
		for _, s := range list.Swarms {
			if s.Name == "pagetest.tgz" && s.Leechers > 0 {
				hash = s.InfoHash
			}
		}
		if hash == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}
	var detail tracker.SwarmDetail
	statusJSON(t, bin, &detail, "--tracker", addr, "--tag", "pagetest", "--json")
	if detail.InfoHash != hash || detail.Size < 10<<20 || len(detail.Peers) == 0 {
		t.Errorf("murder status --tag pagetest --json: got %s of %d bytes with %d peers, want %s, at least 10 MiB and peers",
			detail.InfoHash, detail.Size, len(detail.Peers), hash)
	}

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:0:0],
		append(chromiumFlags, chromedp.ExecPath("chromium"), chromedp.UserDataDir(t.TempDir()))...)...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("chromium: %v", err)
	}
	var dialogs atomic.Int32
	if err := chromedp.Listen(bctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			go chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/#"+hash),
		chromedp.WaitVisible(chromedp.CSS(`tr.swarm[data-infohash="`+hash+`"]`)),
	); err != nil {
		t.Fatalf("the swarm did not appear on the page: %v", err)
	}

	// Follow every peer's progress on the page until all are done.
	type peerRow struct {
		ID       string  `json:"id"`
		Progress float64 `json:"progress"`
	}
	const rowsJS = `[...document.querySelectorAll('#detail tr.peer')].map(r => ({id: r.dataset.peer, progress: +r.dataset.progress}))`
	partial := map[string]float64{} // peers seen part-way, with the progress seen
	rose := ""
	for {
		rows, err := chromedp.Run(bctx, chromedp.Evaluate[[]peerRow](rowsJS))
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range rows {
			if r.Progress > 0 && r.Progress < 1 {
				partial[r.ID] = max(partial[r.ID], r.Progress)
			}
			if r.Progress == 1 {
				done++
				if _, ok := partial[r.ID]; ok && rose == "" {
					rose = r.ID
				}
			}
		}
		if len(rows) == 4 && done == 4 {
			break
		}
		select {
		case err := <-deployDone:
			t.Fatalf("the deploy ended (%v) before the page showed 4 peers done; last rows %+v\n%s%s", err, rows, output.String(), stderr.String())
		case <-ctx.Done():
			t.Fatalf("the page never showed 4 peers done; last rows %+v", rows)
		case <-time.After(250 * time.Millisecond):
		}
	}
	if rose == "" {
		t.Errorf("no peer was seen part-way and then done on the page (seen part-way: %v)", partial)
	} else {
		t.Logf("peer %s rose to done on the page; peers seen part-way: %v", rose, partial)
	}

	// The hostile name is text, and nothing ran.
	type shown struct {
		Name   string `json:"name"`
		Images int    `json:"images"`
	}
	const hostileRow = `tr.swarm[data-infohash="bad0000000000000000000000000000000000000"]`
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(hostileRow))); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[shown](`({name: document.querySelector('`+hostileRow+` td.name').textContent,
		images: document.querySelectorAll('img').length})`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != hostileName || got.Images != 0 || dialogs.Load() != 0 {
		t.Errorf("hostile swarm: page shows name %q, %d img elements, %d dialogs; want %q as text, none and none",
			got.Name, got.Images, dialogs.Load(), hostileName)
	}

	// The chart and the recent deploys once the deploy is done.
	type chartView struct {
		Path    bool   `json:"path"`
		Deploys string `json:"deploys"`
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](
		`document.querySelector('#deploys td.duration') !== null && document.querySelector('#chart path.line') !== null`)); err != nil {
		t.Fatal(err)
	}
	chart, err := chromedp.Run(bctx, chromedp.Evaluate[chartView](
		`({path: document.querySelector('#chart path.line') !== null, deploys: document.querySelector('#deploys tbody').textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	if !chart.Path || !strings.Contains(chart.Deploys, "pagetest.tgz") {
		t.Errorf("got chart line %v and deploys %q, want a line and pagetest.tgz", chart.Path, chart.Deploys)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100 is a PNG
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "live-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the live page: %s", path)

	// The deploy is over and its tracker lingers: an interrupt ends it,
	// and the deploy still succeeds.
	if err := deploy.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-deployDone:
		if err != nil {
			t.Errorf("murder deploy: %v\n%s%s", err, output.String(), stderr.String())
		}
	case <-ctx.Done():
		t.Error("murder deploy did not finish")
	}
}

// statusJSON runs murder status with args and decodes its output into v.
func statusJSON(t *testing.T, bin string, v any, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"status"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("murder status %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("murder status %s printed %q: %v", strings.Join(args, " "), out, err)
	}
	if strings.Count(string(out), "\n") != 1 {
		t.Errorf("murder status --json printed %d lines, want 1", strings.Count(string(out), "\n"))
	}
}
