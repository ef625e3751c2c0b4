package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/murder-deploy/murder/internal/testenv"
)

// TestPeerDetach: `murder peer --detach` returns once the files are in
// place, with a done event, and leaves a process in its own session that
// serves the artifact to the next peer after the original seeder is gone.
func TestPeerDetach(t *testing.T) {
	announce := startTracker(t)
	tree, art := makeArtifact(t, "v7", announce)
	seeder := startMurderSeed(t, art.TorrentPath, art.ArtifactPath)
	waitSeeders(t, announce, art.MetaInfo, 1)

	dest, temp := t.TempDir(), t.TempDir()
	p := start(t, ".", murderBin, "peer", "--torrent", art.TorrentPath, "--destination-path", dest,
		"--temp-path", temp, "--listen", "127.0.0.1:0", "--seed-time", "1h", "--timeout", "2h",
		"--progress", "json", "--detach")
	p.wait(t, 60*time.Second) // returns long before its seed time
	m := regexp.MustCompile(`detached peer started" pid=(\d+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no pid of the detached process in the output:\n%s", p.out.String())
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { stopPid(t, pid) })
	testenv.SameTree(t, tree, filepath.Join(dest, "v7"), testenv.Content)
	checkDoneEvent(t, p, "v7")
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Fatalf("detached process %d: session %d, %v; want a session of its own", pid, sid, err)
	}
	if _, err := os.Stat(filepath.Join(temp, "murder-peer-v7.tgz.torrent.log")); err != nil {
		t.Errorf("detached process log: %v", err)
	}

	// With the first seeder stopped, only the detached process can serve.
	seeder.stop()
	dest2 := t.TempDir()
	murderPeer(t, art.TorrentPath, dest2)
	testenv.SameTree(t, tree, filepath.Join(dest2, "v7"), testenv.Content)
}

// stopPid terminates a process that is not our child and waits until it
// is gone.
func stopPid(t *testing.T, pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 200 {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("detached process %d ignored SIGTERM", pid)
}
