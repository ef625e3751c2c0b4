package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/testenv"
)

// ltScript drives libtorrent (see testdata/ltclient.py).
var ltScript = filepath.Join("testdata", "ltclient.py")

// aria2Args are the options every aria2c in these tests uses: no DHT, LPD
// or PEX, so peers come from the tracker only; plain files; quiet output.
func aria2Args(dir string, port int) []string {
	return []string{
		"--dir=" + dir,
		"--listen-port=" + strconv.Itoa(port),
		"--enable-dht=false",
		"--enable-dht6=false",
		"--bt-enable-lpd=false",
		"--enable-peer-exchange=false",
		"--disable-ipv6=true",
		"--file-allocation=none",
		"--summary-interval=0",
		"--console-log-level=warn",
		"--show-console-readout=false",
		"--auto-save-interval=0",
		"--allow-overwrite=true",
	}
}

// startAria2Seeder seeds torrent from dir (which holds the torrent's NAME)
// with aria2c, which needs --bt-seed-unverified to serve a file it did not
// download.
func startAria2Seeder(t *testing.T, torrent, dir string) *proc {
	t.Helper()
	testenv.Require(t, "aria2c")
	args := append(aria2Args(dir, testenv.FreePort(t, "127.0.0.1")),
		"--bt-seed-unverified=true", "--seed-ratio=0.0", "--check-integrity=false", torrent)
	return start(t, dir, "aria2c", args...)
}

// aria2Download downloads torrent into dir with aria2c and waits for it.
func aria2Download(t *testing.T, torrent, dir string) {
	t.Helper()
	testenv.Require(t, "aria2c")
	args := append(aria2Args(dir, testenv.FreePort(t, "127.0.0.1")), "--seed-time=0", torrent)
	start(t, dir, "aria2c", args...).wait(t, 60*time.Second)
}

// startLTSeeder seeds torrent from dir with libtorrent and waits until it
// has checked the data.
func startLTSeeder(t *testing.T, torrent, dir string) *proc {
	t.Helper()
	testenv.Require(t, "libtorrent")
	p := start(t, ".", testenv.PythonLT, ltScript, "seed", torrent, dir)
	p.waitLine(t, "seeding", 60*time.Second)
	return p
}

// ltDownload downloads torrent into dir with libtorrent and waits for it.
func ltDownload(t *testing.T, torrent, dir string) {
	t.Helper()
	testenv.Require(t, "libtorrent")
	start(t, ".", testenv.PythonLT, ltScript, "download", torrent, dir, "--exit-on-complete", "--timeout", "60").
		wait(t, 70*time.Second)
}

// startMurderSeed runs `murder seed` for torrent and data on loopback.
func startMurderSeed(t *testing.T, torrent, data string) *proc {
	t.Helper()
	p := start(t, ".", murderBin, "seed", "--torrent", torrent, "--data", data,
		"--listen", "127.0.0.1:0", "--log-level", "debug")
	p.waitLine(t, "msg=seeding", 60*time.Second)
	return p
}

// murderPeer runs `murder peer` to completion and returns its stdout lines
// (JSON progress events).
func murderPeer(t *testing.T, torrent, dest string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"peer", "--torrent", torrent, "--destination-path", dest,
		"--temp-path", filepath.Join(t.TempDir(), "tmp"), "--listen", "127.0.0.1:0",
		"--seed-time", "0", "--timeout", "60s", "--progress", "json", "--log-level", "debug"}, extra...)
	p := start(t, ".", murderBin, args...)
	p.wait(t, 70*time.Second)
	return p
}

// makeArtifact packs a random tree with bundle.Create (what `murder create`
// does) and returns the tree, the artifact and its torrent.
func makeArtifact(t *testing.T, tag, announce string) (tree string, res *bundle.CreateResult) {
	t.Helper()
	return makeArtifactOf(t, tag, announce, defaultTree)
}

// makeArtifactOf is makeArtifact for a tree of the given files.
func makeArtifactOf(t *testing.T, tag, announce string, files map[string]int) (tree string, res *bundle.CreateResult) {
	t.Helper()
	tree = writeTreeOf(t, t.TempDir(), files)
	res, err := bundle.Create(context.Background(), bundle.CreateOptions{
		Tag:         tag,
		FilesPath:   tree,
		TempPath:    t.TempDir(),
		Trackers:    []string{announce},
		PieceLength: 256 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree, res
}

// mktorrent makes a torrent of path (file or directory) with mktorrent, a
// third-party creator.
func mktorrent(t *testing.T, path, announce string) (string, *metainfo.MetaInfo) {
	t.Helper()
	testenv.Require(t, "mktorrent")
	out := filepath.Join(t.TempDir(), filepath.Base(path)+".torrent")
	start(t, ".", "mktorrent", "-a", announce, "-l", "18", "-o", out, path).wait(t, 30*time.Second)
	mi, err := metainfo.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, mi
}

// opentrackerURL picks a port for opentracker and returns its announce URL,
// so torrents can name it before the tracker starts (it needs their info
// hashes in its whitelist).
func opentrackerURL(t *testing.T) (string, int) {
	t.Helper()
	testenv.Require(t, "opentracker")
	port := testenv.FreePort(t, "127.0.0.1")
	return fmt.Sprintf("http://127.0.0.1:%d/announce", port), port
}

// startOpentracker runs Debian's opentracker on loopback port, whitelisting
// the given info hashes. opentracker chroots into its directory and drops to
// nobody, so the whitelist lives inside and is named by its path there.
func startOpentracker(t *testing.T, port int, hashes ...metainfo.Hash) {
	t.Helper()
	dir := t.TempDir()
	var wl []byte
	for _, h := range hashes {
		wl = fmt.Appendf(wl, "%s\n", h)
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist"), wl, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "opentracker", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-P", strconv.Itoa(port),
		"-d", dir, "-w", "/whitelist")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("opentracker exited: %v\n%s", p.err, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("opentracker does not listen on %s:\n%s", addr, p.out.String())
}
