package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/tracker"
)

// startTracker runs murder's tracker in-process on loopback with a short
// interval and returns its announce URL.
func startTracker(t *testing.T) string {
	t.Helper()
	srv, err := tracker.NewServer(tracker.Config{Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts.URL + "/announce"
}

// waitSeeders polls the tracker's scrape until it counts n seeders of mi.
func waitSeeders(t *testing.T, announce string, mi *metainfo.MetaInfo, n int) {
	t.Helper()
	su, err := tracker.ScrapeURL(announce)
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.InfoHash()
	var q strings.Builder
	for _, c := range ih {
		fmt.Fprintf(&q, "%%%02X", c)
	}
	for range 300 {
		resp, err := http.Get(su + "?info_hash=" + q.String())
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if stats, err := tracker.DecodeScrapeResponse(body); err == nil && stats[ih].Complete >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tracker never counted %d seeders of %s", n, mi.Info.Name)
}

// startSeed runs Seed in the background until the test ends and waits until
// the tracker lists it.
func startSeed(t *testing.T, announce, torrent, data string) {
	t.Helper()
	mi, err := metainfo.Load(torrent)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Seed(ctx, SeedConfig{Torrent: torrent, Data: data, ListenAddr: "127.0.0.1:0"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Seed: %v", err)
		}
	})
	waitSeeders(t, announce, mi, 1)
}

// writeTree writes a small tree of random files (sizes chosen to straddle
// pieces) under dir.
func writeTree(t *testing.T, dir string) string {
	t.Helper()
	files := map[string]int{
		"bin/app":          1<<20 + 12345,
		"etc/app.conf":     700,
		"share/data/a.bin": 2 << 20,
		"share/empty":      0,
		"README":           1 << 10,
	}
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// makeArtifact packs a random tree as TAG.tar (incompressible data gains
// nothing from gzip) with a torrent announcing to announce.
func makeArtifact(t *testing.T, tag, announce string) (tree string, res *bundle.CreateResult) {
	t.Helper()
	tree = writeTree(t, t.TempDir())
	res, err := bundle.Create(context.Background(), bundle.CreateOptions{
		Tag:         tag,
		FilesPath:   tree,
		TempPath:    t.TempDir(),
		Trackers:    []string{announce},
		Format:      bundle.Tar,
		PieceLength: 64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree, res
}

// makeTorrent hashes the files under dir/name (a file, or a directory for a
// multi-file torrent) into a torrent file, the way any BitTorrent creator
// does, with sha256 set for single files.
func makeTorrent(t *testing.T, dir, name, announce string, pieceLen int64) (string, *metainfo.MetaInfo) {
	t.Helper()
	root := filepath.Join(dir, name)
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	info := metainfo.Info{Name: name, PieceLength: pieceLen}
	var paths []string
	if fi.IsDir() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				paths = append(paths, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(paths)
		for _, p := range paths {
			st, _ := os.Stat(p)
			rel, _ := filepath.Rel(root, p)
			info.Files = append(info.Files, metainfo.File{Length: st.Size(), Path: strings.Split(rel, string(filepath.Separator))})
		}
	} else {
		paths = []string{root}
		info.Length = fi.Size()
	}
	var readers []io.Reader
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		readers = append(readers, f)
	}
	all := io.MultiReader(readers...)
	whole := sha256.New()
	buf := make([]byte, pieceLen)
	for {
		n, err := io.ReadFull(all, buf)
		if n > 0 {
			sum := sha1.Sum(buf[:n])
			info.Pieces = append(info.Pieces, sum[:]...)
			whole.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	if !fi.IsDir() {
		info.SHA256 = whole.Sum(nil)
	}
	mi, err := metainfo.New(info, []string{announce})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name+".torrent")
	if err := metainfo.WriteFile(out, mi, false); err != nil {
		t.Fatal(err)
	}
	return out, mi
}

// events collects reported events.
type events struct {
	mu  sync.Mutex
	evs []progress.Event
	fn  func(progress.Event) // called for each event, outside mu
}

func (e *events) Report(ev progress.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	fn := e.fn
	e.mu.Unlock()
	if fn != nil {
		fn(ev)
	}
}

func (e *events) Close() error { return nil }

func (e *events) all() []progress.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]progress.Event(nil), e.evs...)
}
