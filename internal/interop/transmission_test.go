package interop

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testbed"
	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

// TestTransmission runs on the test bed because transmission treats
// 127.0.0.0/8 as a martian range and never connects to loopback peers: the
// tracker and one side on host 0, the other side on host 1, with addresses
// from 198.18.0.0/15. transmission-cli downloads from `murder seed`, and
// `murder peer` downloads from a transmission-cli seeder. transmission 3
// acts on its own timers (it says interested about 7 s after connecting
// and unchokes at its 10 s rechoke), so each direction takes 10-15 s
// whatever the size; the artifacts are small.
func TestTransmission(t *testing.T) {
	testenv.Require(t, "transmission-cli")
	if err := testbed.Available(); err != nil {
		testenv.Missing(t, "no test bed: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Only /srv/murder is private: the tests' temporary directories under
	// /tmp stay visible in both hosts.
	bed, err := testbed.New(ctx, testbed.Config{Hosts: 2, Dirs: []string{"/srv/murder"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Close() })
	h0, h1 := bed.Host(0), bed.Host(1)

	srv, err := tracker.NewServer(tracker.Config{Interval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := h0.Listen("tcp", netip.AddrPortFrom(h0.Addr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(served) }()
	t.Cleanup(func() { cancel(); <-served })
	announce := "http://" + ln.Addr().String() + "/announce"
	client := &http.Client{Transport: &http.Transport{DialContext: h0.DialContext}}

	t.Run("transmission from murder seed", func(t *testing.T) {
		_, art := makeArtifactOf(t, "v8", announce, smallTree)
		startCmd(t, "murder seed", h0.Command(ctx, murderBin, "seed", "--torrent", art.TorrentPath,
			"--data", art.ArtifactPath, "--listen", net.JoinHostPort(h0.Addr().String(), "0"), "--log-level", "debug")).
			waitLine(t, "msg=seeding", 60*time.Second)
		waitSeedersVia(t, client, announce, art.MetaInfo, 1)

		dir := t.TempDir()
		marker := filepath.Join(t.TempDir(), "finished")
		script := filepath.Join(t.TempDir(), "finished.sh")
		if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		p := startCmd(t, "transmission-cli", h1.Command(ctx, "transmission-cli",
			append(transmissionArgs(t, dir), "-f", script, art.TorrentPath)...))
		finished := false
		for i := 0; i < 1200 && !finished; i++ {
			if _, err := os.Stat(marker); err == nil {
				finished = true
				break
			}
			select {
			case <-p.done:
				t.Fatalf("transmission-cli exited: %v", p.err)
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !finished {
			t.Fatal("transmission-cli did not finish within 60s")
		}
		testenv.SameFile(t, art.ArtifactPath, filepath.Join(dir, "v8.tgz"))
	})

	t.Run("murder peer from transmission", func(t *testing.T) {
		tree, art := makeArtifactOf(t, "v9", announce, smallTree)
		startCmd(t, "transmission-cli", h0.Command(ctx, "transmission-cli",
			append(transmissionArgs(t, filepath.Dir(art.ArtifactPath)), art.TorrentPath)...))
		waitSeedersVia(t, client, announce, art.MetaInfo, 1)

		dest := t.TempDir()
		p := startCmd(t, "murder peer", h1.Command(ctx, murderBin, "peer", "--torrent", art.TorrentPath,
			"--destination-path", dest, "--temp-path", filepath.Join(t.TempDir(), "tmp"),
			"--listen", net.JoinHostPort(h1.Addr().String(), "0"), "--seed-time", "0", "--timeout", "60s",
			"--progress", "json", "--log-level", "debug"))
		p.wait(t, 70*time.Second)
		testenv.SameTree(t, tree, filepath.Join(dest, "v9"), testenv.Content)
		checkDoneEvent(t, p, "v9")
	})
}

// transmissionArgs are transmission-cli's options for a run that keeps its
// data in dir: a fresh config directory with DHT, LPD, PEX, uTP and port
// mapping off, plaintext preferred.
func transmissionArgs(t *testing.T, dir string) []string {
	t.Helper()
	cfg := t.TempDir()
	settings := `{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
 "port-forwarding-enabled": false, "rpc-enabled": false, "encryption": 0}`
	if err := os.WriteFile(filepath.Join(cfg, "settings.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-g", cfg, "-w", dir, "-p", "51413", "-et", "-M"}
}
