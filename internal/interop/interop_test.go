package interop

import (
	"path/filepath"
	"testing"

	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/testenv"
)

// TestThirdPartyDownloadsFromMurderSeed: aria2c and libtorrent each fetch an
// artifact from `murder seed`, found through murder's tracker, and end up
// with the same bytes.
func TestThirdPartyDownloadsFromMurderSeed(t *testing.T) {
	clients := []struct {
		name     string
		tool     string
		download func(t *testing.T, torrent, dir string)
	}{
		{"aria2c", "aria2c", aria2Download},
		{"libtorrent", "libtorrent", ltDownload},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			testenv.Require(t, c.tool)
			announce := startTracker(t)
			_, art := makeArtifact(t, "v1", announce)
			startMurderSeed(t, art.TorrentPath, art.ArtifactPath)
			waitSeeders(t, announce, art.MetaInfo, 1)

			dir := t.TempDir()
			c.download(t, art.TorrentPath, dir)
			testenv.SameFile(t, art.ArtifactPath, filepath.Join(dir, "v1.tgz"))
		})
	}
}

// TestMurderPeerFromThirdPartySeeder: `murder peer` fetches an artifact
// from an aria2c or a libtorrent seeder through murder's tracker, extracts
// it, and the tree matches the one that was packed.
func TestMurderPeerFromThirdPartySeeder(t *testing.T) {
	seeders := []struct {
		name  string
		tool  string
		start func(t *testing.T, torrent, dir string) *proc
	}{
		{"aria2c", "aria2c", startAria2Seeder},
		{"libtorrent", "libtorrent", startLTSeeder},
	}
	for _, s := range seeders {
		t.Run(s.name, func(t *testing.T) {
			testenv.Require(t, s.tool)
			announce := startTracker(t)
			tree, art := makeArtifact(t, "v2", announce)
			s.start(t, art.TorrentPath, filepath.Dir(art.ArtifactPath))
			waitSeeders(t, announce, art.MetaInfo, 1)

			dest := t.TempDir()
			p := murderPeer(t, art.TorrentPath, dest)
			testenv.SameTree(t, tree, filepath.Join(dest, "v2"), testenv.Content)
			checkDoneEvent(t, p, "v2")
		})
	}
}

// TestMurderPeerMultiFileFromLibtorrent: a multi-file torrent made by
// mktorrent, seeded by libtorrent, is placed by `murder peer` as a tree.
func TestMurderPeerMultiFileFromLibtorrent(t *testing.T) {
	testenv.Require(t, "libtorrent")
	announce := startTracker(t)
	parent := t.TempDir()
	tree := writeTree(t, filepath.Join(parent, "site"))
	torrent, mi := mktorrent(t, tree, announce)
	startLTSeeder(t, torrent, parent)
	waitSeeders(t, announce, mi, 1)

	dest := t.TempDir()
	murderPeer(t, torrent, dest)
	testenv.SameTree(t, tree, filepath.Join(dest, "site"), testenv.Content)
}

// TestOpentracker: with Debian's opentracker as the tracker, `murder peer`
// finds and downloads from a libtorrent seeder, and aria2c downloads from
// `murder seed`.
func TestOpentracker(t *testing.T) {
	testenv.Require(t, "libtorrent")
	testenv.Require(t, "aria2c")
	announce, port := opentrackerURL(t)
	// One torrent per direction, so no stale seeder of one run is counted
	// in the other: opentracker's clients re-announce only every half hour.
	tree, fromLT := makeArtifact(t, "v3", announce)
	_, fromMurder := makeArtifact(t, "v4", announce)
	startOpentracker(t, port, fromLT.MetaInfo.InfoHash(), fromMurder.MetaInfo.InfoHash())

	t.Run("murder peer from libtorrent", func(t *testing.T) {
		startLTSeeder(t, fromLT.TorrentPath, filepath.Dir(fromLT.ArtifactPath))
		waitSeeders(t, announce, fromLT.MetaInfo, 1)
		dest := t.TempDir()
		murderPeer(t, fromLT.TorrentPath, dest, "--no-tag-directory")
		testenv.SameTree(t, tree, dest, testenv.Content)
	})
	t.Run("aria2c from murder seed", func(t *testing.T) {
		startMurderSeed(t, fromMurder.TorrentPath, fromMurder.ArtifactPath)
		waitSeeders(t, announce, fromMurder.MetaInfo, 1)
		dir := t.TempDir()
		aria2Download(t, fromMurder.TorrentPath, dir)
		testenv.SameFile(t, fromMurder.ArtifactPath, filepath.Join(dir, "v4.tgz"))
	})
}

// checkDoneEvent finds the done event among the peer's JSON lines.
func checkDoneEvent(t *testing.T, p *proc, tag string) {
	t.Helper()
	for _, ev := range events(t, p) {
		if ev.Event == progress.EventDone {
			if ev.Tag != tag || ev.BytesDone != ev.BytesTotal || ev.BytesTotal == 0 {
				t.Fatalf("done event %+v, want tag %q and bytes_done = bytes_total > 0", ev, tag)
			}
			return
		}
	}
	t.Fatalf("no done event in output:\n%s", p.out.String())
}
