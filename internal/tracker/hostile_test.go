package tracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServerHostileClients sends a burst of malformed requests while slow
// clients hold connections open, and checks that good announces are still
// served and that the slow clients are cut off.
func TestServerHostileClients(t *testing.T) {
	_, base := startServerWith(t, Config{}, func(s *Server) { s.headerTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(base, "http://")

	// Slow clients: a request line and then nothing more.
	const slow = 50
	var slowConns []net.Conn
	for range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("GET /announce?info_hash=")); err != nil {
			t.Fatal(err)
		}
		slowConns = append(slowConns, c)
	}

	// Malformed requests over raw TCP, from 8 clients at once.
	rng := rand.New(rand.NewPCG(1, 2))
	var requests []string
	for i := range 400 {
		junk := make([]byte, rng.IntN(200))
		for j := range junk {
			junk[j] = byte(rng.IntN(256))
		}
		switch i % 5 {
		case 0: // random bytes as a query
			requests = append(requests, "GET /announce?"+string(junk)+" HTTP/1.1\r\nHost: x\r\n\r\n")
		case 1: // random bytes as a request
			requests = append(requests, string(junk)+"\r\n\r\n")
		case 2: // headers over the limit
			requests = append(requests, "GET /announce HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
		case 3: // well-formed HTTP, bad announce
			requests = append(requests, fmt.Sprintf("GET /announce?info_hash=%%zz&port=%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		case 4: // a body the tracker never reads
			requests = append(requests, "POST /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")
		}
	}
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for req := range work {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.Write([]byte(req))
				// Either a reply or a closed connection; never a hang.
				_, err = bufio.NewReader(c).ReadString('\n')
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("tracker neither answered nor closed for %.40q", req)
				}
				c.Close()
			}
		})
	}
	for _, r := range requests {
		work <- r
	}
	close(work)
	wg.Wait()

	// Good announces are served throughout.
	ih := hash20("after the storm")
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{HTTPClient: &http.Client{}, Timeout: 10 * time.Second})
	for i := range 20 {
		_, err := c.Announce(context.Background(), AnnounceRequest{InfoHash: ih, PeerID: hash20(fmt.Sprint(i)), Port: 1000 + i, Left: 1})
		if err != nil {
			t.Fatalf("good announce %d: %v", i, err)
		}
	}
	got, err := c.Scrape(context.Background(), ih)
	if err != nil || got[ih].Incomplete != 20 {
		t.Fatalf("scrape after the storm: %+v, %v", got, err)
	}

	// The slow clients were cut off by the header timeout.
	for i, sc := range slowConns {
		sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := bufio.NewReader(sc).ReadString('\n')
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("slow client %d still connected", i)
		}
	}
}
