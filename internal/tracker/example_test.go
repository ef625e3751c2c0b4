package tracker_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/murder-deploy/murder/internal/tracker"
)

// A seeder and a leecher announce to an in-process tracker; the leecher
// hears of the seeder.
func Example() {
	srv, err := tracker.NewServer(tracker.Config{})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	ctx := context.Background()
	ih := [20]byte{0xde, 0xad}
	c := tracker.NewClient([][]string{{ts.URL + "/announce"}}, tracker.ClientConfig{})
	_, err = c.Announce(ctx, tracker.AnnounceRequest{InfoHash: ih, PeerID: [20]byte{'s'}, IP: "198.18.0.1", Port: 6881, Event: tracker.EventStarted})
	if err != nil {
		panic(err)
	}
	resp, err := c.Announce(ctx, tracker.AnnounceRequest{InfoHash: ih, PeerID: [20]byte{'l'}, IP: "198.18.0.2", Port: 6881, Left: 1 << 20, Event: tracker.EventStarted})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Interval, resp.Complete, resp.Incomplete, resp.Peers)
	// Output: 15s 1 1 [198.18.0.1:6881]
}
