package interop

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/testenv"
)

// TestPeerResumeAfterKill: a `murder peer` killed with SIGKILL halfway
// leaves verified pieces in its temp path; the next run re-checks them,
// fetches only the rest and places the same tree.
func TestPeerResumeAfterKill(t *testing.T) {
	announce := startTracker(t)
	tree, art := makeArtifact(t, "v10", announce)
	startMurderSeed(t, art.TorrentPath, art.ArtifactPath)
	waitSeeders(t, announce, art.MetaInfo, 1)

	dest, temp := t.TempDir(), t.TempDir()
	args := []string{"peer", "--torrent", art.TorrentPath, "--destination-path", dest, "--temp-path", temp,
		"--listen", "127.0.0.1:0", "--seed-time", "0", "--timeout", "60s", "--progress", "json"}
	first := start(t, ".", murderBin, append(args, "--max-download-rate", "2MiB")...)
	// Kill it once a third is verified (a progress line says so).
	deadline := time.After(60 * time.Second)
	var had int64
	for had < art.Size/3 {
		changed := first.out.changed()
		if had = maxDone(t, first); had >= art.Size/3 {
			break
		}
		select {
		case <-changed:
		case <-first.done:
			t.Fatalf("first run ended before it was killed:\n%s", first.out.String())
		case <-deadline:
			t.Fatalf("first run did not reach a third:\n%s", first.out.String())
		}
	}
	syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL)
	<-first.done
	had = maxDone(t, first)
	if had >= art.Size {
		t.Fatalf("first run finished (%d bytes) before the kill; nothing to resume", had)
	}

	second := start(t, ".", murderBin, args...)
	second.wait(t, 70*time.Second)
	testenv.SameTree(t, tree, filepath.Join(dest, "v10"), testenv.Content)
	var fromDisk, downloaded int64 = -1, 0
	for _, ev := range events(t, second) {
		if ev.State == progress.StateDownloading && fromDisk < 0 {
			fromDisk = ev.BytesDone
		}
		downloaded = max(downloaded, ev.Downloaded)
	}
	t.Logf("killed at %d of %d bytes; the second run started from %d and downloaded %d", had, art.Size, fromDisk, downloaded)
	if fromDisk < had {
		t.Errorf("second run re-checked %d bytes as good, want at least the %d the first run reported", fromDisk, had)
	}
	if downloaded > art.Size-fromDisk {
		t.Errorf("second run downloaded %d bytes, want at most the missing %d", downloaded, art.Size-fromDisk)
	}
}

// events parses the JSON progress lines a murder peer printed so far.
func events(t *testing.T, p *proc) []progress.Event {
	t.Helper()
	p.out.mu.Lock()
	lines := append([]string(nil), p.out.lines...)
	p.out.mu.Unlock()
	var out []progress.Event
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var ev progress.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("bad progress line %q: %v", l, err)
		}
		out = append(out, ev)
	}
	return out
}

func maxDone(t *testing.T, p *proc) int64 {
	var m int64
	for _, ev := range events(t, p) {
		m = max(m, ev.BytesDone)
	}
	return m
}
