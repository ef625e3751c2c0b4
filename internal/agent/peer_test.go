package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/testenv"
)

// peerConfig is a loopback peer configuration for tests.
func peerConfig(t *testing.T, torrent, dest string) PeerConfig {
	return PeerConfig{
		Torrent:          torrent,
		Destination:      dest,
		TempPath:         filepath.Join(t.TempDir(), "tmp"),
		ListenAddr:       "127.0.0.1:0",
		Timeout:          60 * time.Second,
		ProgressInterval: 20 * time.Millisecond,
	}
}

func TestPeerEndToEnd(t *testing.T) {
	announce := startTracker(t)
	tree, art := makeArtifact(t, "v1", announce)
	startSeed(t, announce, art.TorrentPath, art.ArtifactPath)

	dest := t.TempDir()
	// An earlier tag in DIR must be left alone.
	if err := os.MkdirAll(filepath.Join(dest, "v0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "v0", "keep"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg := peerConfig(t, art.TorrentPath, dest)
	// Seed on "forever": the done event must come before the seeding, and
	// stopping the run then (as an orchestrator would) is a success.
	cfg.SeedTime = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jsonRep := NewJSONReporter(&out)
	cfg.Reporter = &events{fn: func(ev progress.Event) {
		jsonRep.Report(ev)
		if ev.Event == progress.EventDone {
			cancel()
		}
	}}
	if err := Peer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	testenv.SameTree(t, tree, filepath.Join(dest, "v1"), testenv.Content)
	if b, err := os.ReadFile(filepath.Join(dest, "v0", "keep")); err != nil || string(b) != "old" {
		t.Errorf("other tag v0/keep = %q, %v; want it untouched", b, err)
	}

	// Progress: well-formed lines, bytes_done never falls, exactly one done,
	// no error.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last int64
	done := -1
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		for _, k := range []string{"event", "tag", "bytes_done", "bytes_total", "down_rate", "up_rate", "peers"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line %d %q lacks %q", i, l, k)
			}
		}
		var ev progress.Event
		json.Unmarshal([]byte(l), &ev)
		if ev.Tag != "v1" || ev.BytesTotal != art.Size {
			t.Fatalf("line %d: tag %q total %d, want v1 and %d", i, ev.Tag, ev.BytesTotal, art.Size)
		}
		if ev.BytesDone < last {
			t.Fatalf("line %d: bytes_done fell from %d to %d", i, last, ev.BytesDone)
		}
		last = ev.BytesDone
		switch ev.Event {
		case progress.EventDone:
			if done >= 0 {
				t.Fatalf("second done event on line %d", i)
			}
			done = i
			if ev.State != progress.StateSeeding {
				t.Errorf("done event's state %q, want %q: the peer seeds on", ev.State, progress.StateSeeding)
			}
			if ev.BytesDone != art.Size || ev.Path != filepath.Join(dest, "v1") {
				t.Fatalf("done event %+v: want bytes_done %d and path %s", ev, art.Size, filepath.Join(dest, "v1"))
			}
		case progress.EventError:
			t.Fatalf("error event %q", l)
		}
	}
	if done < 0 {
		t.Fatalf("no done event in %d lines", len(lines))
	}
}

func TestPeerDestinationRules(t *testing.T) {
	announce := startTracker(t)
	tree, art := makeArtifact(t, "v2", announce)
	startSeed(t, announce, art.TorrentPath, art.ArtifactPath)

	tests := []struct {
		name      string
		existing  map[string]string // files under DIR before the run
		noTagDir  bool
		unsafe    bool
		wantErr   error
		wantAt    string // where the tree must land (relative to DIR)
		untouched []string
	}{
		{name: "missing destination is created", wantAt: "v2"},
		{name: "empty tag directory is used", existing: map[string]string{"v2/": ""}, wantAt: "v2"},
		{name: "non-empty refused", existing: map[string]string{"v2/old": "x", "v1/keep": "k"},
			wantErr: ErrDestinationNotEmpty, untouched: []string{"v2/old", "v1/keep"}},
		{name: "unsafe please delete replaces", existing: map[string]string{"v2/old": "x", "v1/keep": "k"},
			unsafe: true, wantAt: "v2", untouched: []string{"v1/keep"}},
		{name: "no tag directory, non-empty refused", existing: map[string]string{"other": "o"},
			noTagDir: true, wantErr: ErrDestinationNotEmpty, untouched: []string{"other"}},
		{name: "no tag directory into empty dir", noTagDir: true, wantAt: "."},
		{name: "no tag directory, unsafe replaces all", existing: map[string]string{"other": "o"},
			noTagDir: true, unsafe: true, wantAt: "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "deploy")
			for name, content := range tt.existing {
				p := filepath.Join(dir, name)
				if strings.HasSuffix(name, "/") {
					os.MkdirAll(p, 0o755)
					continue
				}
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(content), 0o644)
			}
			cfg := peerConfig(t, art.TorrentPath, dir)
			cfg.NoTagDirectory, cfg.UnsafePleaseDelete = tt.noTagDir, tt.unsafe
			var got events
			cfg.Reporter = &got
			err := Peer(context.Background(), cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Peer error = %v, want %v", err, tt.wantErr)
				}
				// Refused before downloading anything.
				if _, err := os.Stat(filepath.Join(cfg.TempPath, art.MetaInfo.Info.Name)); err == nil {
					t.Errorf("refused peer still downloaded into the temp path")
				}
				evs := got.all()
				if len(evs) == 0 || evs[len(evs)-1].Event != progress.EventError || evs[len(evs)-1].Message == "" {
					t.Errorf("last event %+v, want an error with a message", evs)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for _, name := range tt.untouched {
				if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != tt.existing[name] {
					t.Errorf("%s = %q, %v; want it untouched", name, b, err)
				}
			}
			if tt.wantAt != "" {
				testenv.SameTree(t, tree, filepath.Join(dir, tt.wantAt), testenv.Content)
			}
		})
	}
}

func TestPeerRawPlacement(t *testing.T) {
	announce := startTracker(t)
	src := t.TempDir()
	writeTree(t, filepath.Join(src, "site"))
	if err := os.WriteFile(filepath.Join(src, "app.bin"), bytes.Repeat([]byte("murder"), 300000), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tarArt := makeArtifact(t, "v5", announce)

	multi, _ := makeTorrent(t, src, "site", announce, 32<<10)
	single, _ := makeTorrent(t, src, "app.bin", announce, 32<<10)
	startSeed(t, announce, multi, filepath.Join(src, "site"))
	startSeed(t, announce, single, filepath.Join(src, "app.bin"))
	startSeed(t, announce, tarArt.TorrentPath, tarArt.ArtifactPath)

	tests := []struct {
		name       string
		torrent    string
		pathIsFile bool
		want, at   string // tree or file to compare, and where it lands under DIR
	}{
		{name: "multi-file keeps its tree", torrent: multi, want: filepath.Join(src, "site"), at: "site"},
		{name: "single non-archive file", torrent: single, want: filepath.Join(src, "app.bin"), at: "app.bin/app.bin"},
		{name: "path is file leaves an archive packed", torrent: tarArt.TorrentPath, pathIsFile: true,
			want: tarArt.ArtifactPath, at: "v5/v5.tar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := peerConfig(t, tt.torrent, dir)
			cfg.PathIsFile = tt.pathIsFile
			// No seeding on: the done event says so.
			var evs events
			cfg.Reporter = &evs
			if err := Peer(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			all := evs.all()
			if len(all) == 0 || all[len(all)-1].Event != progress.EventDone || all[len(all)-1].State != progress.StateDone {
				t.Errorf("last event %+v, want done in state %q", all[len(all)-1:], progress.StateDone)
			}
			if fi, _ := os.Stat(tt.want); fi != nil && fi.IsDir() {
				testenv.SameTree(t, tt.want, filepath.Join(dir, tt.at), testenv.Content)
			} else {
				testenv.SameFile(t, tt.want, filepath.Join(dir, tt.at))
			}
			// Written once, where it was placed: nothing in the temp
			// path, nothing left beside the destination.
			if left, _ := os.ReadDir(cfg.TempPath); len(left) != 0 {
				t.Errorf("the temp path holds %v, want nothing", left)
			}
			want := strings.SplitN(tt.at, "/", 2)[0]
			if left, _ := os.ReadDir(dir); len(left) != 1 || left[0].Name() != want {
				t.Errorf("the destination directory holds %v, want only %s", left, want)
			}
		})
	}
}

// TestPeerKeepsPlacedFiles: a later download of another file of the same
// name, with the same temp path, must not change the file placed before.
func TestPeerKeepsPlacedFiles(t *testing.T) {
	announce := startTracker(t)
	v1, v2 := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(v1, "app.bin"), bytes.Repeat([]byte("v1"), 200000), 0o644))
	must(os.WriteFile(filepath.Join(v2, "app.bin"), bytes.Repeat([]byte("2v"), 300000), 0o644))
	t1, _ := makeTorrent(t, v1, "app.bin", announce, 32<<10)
	t2, _ := makeTorrent(t, v2, "app.bin", announce, 32<<10)
	startSeed(t, announce, t1, filepath.Join(v1, "app.bin"))
	startSeed(t, announce, t2, filepath.Join(v2, "app.bin"))

	temp := filepath.Join(t.TempDir(), "tmp")
	first, second := t.TempDir(), t.TempDir()
	cfg := peerConfig(t, t1, first)
	cfg.TempPath = temp
	must(Peer(context.Background(), cfg))
	cfg = peerConfig(t, t2, second)
	cfg.TempPath = temp
	must(Peer(context.Background(), cfg))
	testenv.SameFile(t, filepath.Join(v1, "app.bin"), filepath.Join(first, "app.bin", "app.bin"))
	testenv.SameFile(t, filepath.Join(v2, "app.bin"), filepath.Join(second, "app.bin", "app.bin"))
}

// TestPeerSHA256Mismatch runs for an archive and for the same file placed
// as it is (--path-is-file), which is written into place while it arrives.
func TestPeerSHA256Mismatch(t *testing.T) {
	t.Run("archive", func(t *testing.T) { testPeerSHA256Mismatch(t, false) })
	t.Run("as is", func(t *testing.T) { testPeerSHA256Mismatch(t, true) })
}

func testPeerSHA256Mismatch(t *testing.T, pathIsFile bool) {
	announce := startTracker(t)
	_, art := makeArtifact(t, "v3", announce)
	// Same pieces, wrong whole-file digest: every piece verifies, the
	// final check must not.
	info := art.MetaInfo.Info
	info.SHA256 = bytes.Repeat([]byte{0xab}, 32)
	mi, err := metainfo.New(info, []string{announce})
	if err != nil {
		t.Fatal(err)
	}
	torrent := filepath.Join(t.TempDir(), "v3.tar.torrent")
	if err := metainfo.WriteFile(torrent, mi, false); err != nil {
		t.Fatal(err)
	}
	startSeed(t, announce, torrent, art.ArtifactPath)

	dir := t.TempDir()
	cfg := peerConfig(t, torrent, dir)
	cfg.PathIsFile = pathIsFile
	err = Peer(context.Background(), cfg)
	if !errors.Is(err, ErrSHA256Mismatch) {
		t.Fatalf("Peer error = %v, want %v", err, ErrSHA256Mismatch)
	}
	checkLeft(t, dir, leftAfterFailure(mi, "v3", pathIsFile)...)
}

// leftAfterFailure is what a failed run leaves in the destination's
// directory: for files placed as they are the partial stage that the next
// run resumes from, else nothing.
func leftAfterFailure(mi *metainfo.MetaInfo, tag string, pathIsFile bool) []string {
	if !pathIsFile {
		return nil
	}
	return []string{"." + tag + ".murder-partial-" + mi.InfoHash().String()}
}

// checkLeft fails t unless dir holds exactly the entries named.
func checkLeft(t *testing.T, dir string, names ...string) {
	t.Helper()
	if got := testenv.ListDir(t, dir); strings.Join(got, " ") != strings.Join(names, " ") {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

// TestPeerResume runs for an archive and for the same file placed as it is
// (--path-is-file), which resumes from the partial stage beside the
// destination.
func TestPeerResume(t *testing.T) {
	t.Run("archive", func(t *testing.T) { testPeerResume(t, false) })
	t.Run("as is", func(t *testing.T) { testPeerResume(t, true) })
}

func testPeerResume(t *testing.T, pathIsFile bool) {
	announce := startTracker(t)
	tree, art := makeArtifact(t, "v4", announce)
	startSeed(t, announce, art.TorrentPath, art.ArtifactPath)
	dir := t.TempDir()
	temp := filepath.Join(t.TempDir(), "tmp")

	cfg := peerConfig(t, art.TorrentPath, dir)
	cfg.PathIsFile = pathIsFile
	cfg.TempPath = temp
	had := stopAtAThird(t, cfg, art.Size)
	if had < art.Size/3 || had == art.Size {
		t.Fatalf("first run stopped with %d of %d bytes; want a partial download", had, art.Size)
	}
	checkLeft(t, dir, leftAfterFailure(art.MetaInfo, "v4", pathIsFile)...)

	second := &events{}
	cfg.Reporter = second
	if err := Peer(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if pathIsFile {
		testenv.SameFile(t, art.ArtifactPath, filepath.Join(dir, "v4", filepath.Base(art.ArtifactPath)))
	} else {
		testenv.SameTree(t, tree, filepath.Join(dir, "v4"), testenv.Content)
	}
	checkLeft(t, dir, "v4")
	evs := second.all()
	var fromDisk int64 = -1
	var downloaded int64
	for _, ev := range evs {
		if ev.State == progress.StateDownloading && fromDisk < 0 {
			fromDisk = ev.BytesDone
		}
		downloaded = max(downloaded, ev.Downloaded)
	}
	t.Logf("first run had %d of %d; second started from %d and downloaded %d", had, art.Size, fromDisk, downloaded)
	if fromDisk < had {
		t.Errorf("second run started from %d verified bytes, want at least %d", fromDisk, had)
	}
	if downloaded > art.Size-fromDisk {
		t.Errorf("second run downloaded %d bytes, want at most the missing %d", downloaded, art.Size-fromDisk)
	}
}

// stopAtAThird runs a slow download with cfg and stops it once about a
// third of size bytes has been verified; it returns the most verified.
func stopAtAThird(t *testing.T, cfg PeerConfig, size int64) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := &events{fn: func(ev progress.Event) {
		if ev.BytesDone >= size/3 {
			cancel()
		}
	}}
	cfg.DownloadRate = 1 << 20
	cfg.Reporter = evs
	if err := Peer(ctx, cfg); err == nil {
		t.Fatal("interrupted Peer returned nil")
	}
	var had int64
	for _, ev := range evs.all() {
		had = max(had, ev.BytesDone)
	}
	return had
}

func TestPeerTimeout(t *testing.T) {
	announce := startTracker(t)
	_, art := makeArtifact(t, "v6", announce) // nobody seeds it
	dir := t.TempDir()
	var got events
	cfg := peerConfig(t, art.TorrentPath, dir)
	cfg.Timeout = 300 * time.Millisecond
	cfg.Reporter = &got
	err := Peer(context.Background(), cfg)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Peer error = %v, want %v", err, ErrTimeout)
	}
	if !strings.Contains(err.Error(), "300ms") {
		t.Errorf("timeout error %q does not say how long", err)
	}
	evs := got.all()
	if len(evs) == 0 || evs[len(evs)-1].Event != progress.EventError {
		t.Fatalf("events %+v, want an error last", evs)
	}
	if _, err := os.Stat(filepath.Join(dir, "v6")); !os.IsNotExist(err) {
		t.Fatalf("destination exists after a timeout (%v)", err)
	}
}

func TestPeerBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.torrent")
	os.WriteFile(bad, []byte("d4:infoi1ee"), 0o644)
	tests := []struct {
		name string
		cfg  PeerConfig
	}{
		{"no torrent", PeerConfig{Destination: dir}},
		{"no destination", PeerConfig{Torrent: bad}},
		{"missing torrent", PeerConfig{Torrent: filepath.Join(dir, "nope.torrent"), Destination: dir}},
		{"malformed torrent", PeerConfig{Torrent: bad, Destination: dir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Peer(context.Background(), tt.cfg)
			if err == nil {
				t.Fatal("Peer succeeded")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

func TestPeerHostileArchive(t *testing.T) {
	announce := startTracker(t)
	src := t.TempDir()
	// A tar whose second entry climbs out of the destination.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct{ name, body string }{{"ok.txt", "fine"}, {"../../escaped.txt", "evil"}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(e.body))
	}
	tw.Close()
	if err := os.WriteFile(filepath.Join(src, "v9.tar"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	torrent, _ := makeTorrent(t, src, "v9.tar", announce, 16<<10)
	startSeed(t, announce, torrent, filepath.Join(src, "v9.tar"))

	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	err := Peer(context.Background(), peerConfig(t, torrent, dir))
	if !errors.Is(err, bundle.ErrUnsafeEntry) {
		t.Fatalf("Peer error = %v, want %v", err, bundle.ErrUnsafeEntry)
	}
	if _, err := os.Stat(filepath.Join(dir, "v9")); !os.IsNotExist(err) {
		t.Errorf("destination exists after a refused archive (%v)", err)
	}
	for _, p := range []string{filepath.Join(root, "escaped.txt"), filepath.Join(root, "a", "escaped.txt"), filepath.Join(dir, "escaped.txt")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was written outside the destination", p)
		}
	}
}
