package swarm

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/tracker"
)

// handlerTransport hands announces straight to a tracker's handler, from
// the given address.
type handlerTransport struct {
	h    http.Handler
	from string
}

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.RemoteAddr = t.from
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// TestComesBackForTheSeeder starts two connected peers before their
// seeder, with a tracker whose interval is an hour: while the tracker
// knows no seeder the peers come back soon (within 5 s) instead of at the
// interval, so once the seeder has announced they find it and finish.
// The peers announce an address nobody listens on, so the seeder cannot
// dial them. In virtual time, over pipes.
func TestComesBackForTheSeeder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := tracker.NewServer(tracker.Config{Interval: time.Hour, MinInterval: time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		mi, data := makeTorrent(t, 1<<20, 64<<10, []string{"http://tracker.test/announce"})
		pn := newPipeNet()
		node := func(seed bool, announceIP string) (*Swarm, string) {
			h := pn.host()
			hc := &http.Client{Transport: handlerTransport{srv, h.addr.String() + ":40000"}}
			return newNode(t, mi, data, seed, Config{Network: h, HTTPClient: hc, AnnounceIP: announceIP})
		}
		peer, file := node(false, "198.18.9.9")
		other, _ := node(false, "198.18.9.9")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		waitPeers := runAll(t, ctx, peer, other)
		peer.AddPeer(addrOf(t, other))
		// Past the first announces and the next ones: the peers are
		// connected, and the tracker still knows no seeder.
		time.Sleep(12 * time.Second)
		if peer.Stats().Peers != 1 {
			t.Fatalf("the peer has %d connections, want 1 (the other peer)", peer.Stats().Peers)
		}
		seeder, _ := node(true, "")
		waitSeeder := runAll(t, ctx, seeder)
		start := time.Now()
		waitComplete(t, ctx, peer)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the peer finished %v after the seeder started, want within 10 s", d)
		}
		cancel()
		waitPeers()
		waitSeeder()
		checkFile(t, file, data)
	})
}
