package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// transfer sends size bytes from each of senders to dst's port over nw and
// returns when each arrived, measured from the start.
func transfer(t *testing.T, dst *Host, senders []*Host, size int) []time.Duration {
	t.Helper()
	ln, err := dst.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i * 7)
	}
	start := time.Now()
	got := make([]time.Duration, len(senders))
	var wg sync.WaitGroup
	for i, h := range senders {
		wg.Go(func() {
			c, err := h.Dial(context.Background(), addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if _, err := c.Write(want); err != nil {
				t.Error(err)
			}
		})
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			b, err := io.ReadAll(c)
			got[i] = time.Since(start)
			if err != nil || !bytes.Equal(b, want) {
				t.Errorf("receiver %d: %d bytes, err %v; want the %d bytes sent", i, len(b), err, size)
			}
		})
	}
	wg.Wait()
	return got
}

// within fails unless got is within tol of want.
func within(t *testing.T, what string, got, want, tol time.Duration) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s: got %v, want %v ± %v", what, got, want, tol)
	}
}

func TestNetworkPaces(t *testing.T) {
	const size = 1 << 20
	// Links pace wire bytes: payload plus TCP/IP headers per MSS.
	wire := (&segment{b: make([]byte, segmentSize), p: &pipe{}}).wire()
	scale := func(d time.Duration) time.Duration { return d * time.Duration(wire) / segmentSize }
	seg := func(rate int64) time.Duration { return time.Duration(wire * int64(time.Second) / rate) }
	t.Run("one flow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			nw := NewNetwork(ctx)
			l := Link{Up: 1 << 20, Down: 1 << 20, Latency: 10 * time.Millisecond}
			a, _ := nw.AddHost(hostAddr(0), nil, l)
			b, _ := nw.AddHost(hostAddr(1), nil, l)
			got := transfer(t, b, []*Host{a}, size)
			// The dial's round trip, the bytes at 1 MiB/s, and the last
			// segment's latency and second link.
			want := 20*time.Millisecond + scale(time.Second) + 10*time.Millisecond + seg(1<<20)
			within(t, "1 MiB at 1 MiB/s", got[0], want, seg(1<<20))
			if a.BytesSent() != size || b.BytesReceived() != size {
				t.Errorf("links carried %d and %d bytes, want %d", a.BytesSent(), b.BytesReceived(), size)
			}
			cancel()
			nw.Wait()
		})
	})
	t.Run("shared downlink", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			nw := NewNetwork(ctx)
			fast := Link{Up: 4 << 20, Down: 4 << 20}
			dst, _ := nw.AddHost(hostAddr(0), nil, Link{Up: 1 << 20, Down: 1 << 20})
			var src []*Host
			for i := range 2 {
				h, _ := nw.AddHost(hostAddr(i+1), nil, fast)
				src = append(src, h)
			}
			got := transfer(t, dst, src, size)
			// Two flows share the receiver's 1 MiB/s: both end after
			// about 2 s.
			for i, d := range got {
				within(t, "flow "+string(rune('A'+i)), d, scale(2*time.Second), 100*time.Millisecond)
			}
			cancel()
			nw.Wait()
		})
	})
	t.Run("wan", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			nw := NewNetwork(ctx)
			east, west := nw.AddDatacenter("east", 512<<10), nw.AddDatacenter("west", 512<<10)
			l := Link{Up: 4 << 20, Down: 4 << 20}
			a, _ := nw.AddHost(hostAddr(0), east, l)
			b, _ := nw.AddHost(hostAddr(1), west, l)
			c, _ := nw.AddHost(hostAddr(2), west, l)
			got := transfer(t, b, []*Host{a}, size)
			within(t, "1 MiB over a 512 KiB/s WAN", got[0], scale(2*time.Second), 50*time.Millisecond)
			if west.BytesIn() != size || east.BytesOut() != size {
				t.Errorf("WAN carried %d in, %d out; want %d", west.BytesIn(), east.BytesOut(), size)
			}
			got = transfer(t, c, []*Host{b}, size)
			within(t, "1 MiB inside a datacenter at 4 MiB/s", got[0], scale(250*time.Millisecond), 20*time.Millisecond)
			if west.BytesIn() != size {
				t.Errorf("traffic inside west crossed its WAN link: %d bytes in, want %d", west.BytesIn(), size)
			}
			cancel()
			nw.Wait()
		})
	})
}

// TestSmallSegmentsKeepRate sends segments that take about a third of a
// grid step more than one step each: a link that rounded each one to the
// grid would take half as long again.
func TestSmallSegmentsKeepRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		nw := NewNetwork(ctx)
		const rate, n, size = 125_000_000, 10_000, 100
		l := Link{Up: rate, Down: rate}
		a, _ := nw.AddHost(hostAddr(0), nil, l)
		b, _ := nw.AddHost(hostAddr(1), nil, l)
		ln, err := b.Listen(":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := a.Dial(context.Background(), netip.MustParseAddrPort(ln.Addr().String()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		go func() {
			msg := make([]byte, size)
			for range n {
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		if _, err := io.ReadFull(s, make([]byte, n*size)); err != nil {
			t.Fatal(err)
		}
		wire := (&segment{b: make([]byte, size), p: &pipe{}}).wire()
		want := time.Duration(n * wire * int64(time.Second) / rate)
		within(t, "10,000 segments of 100 bytes at 1 Gbit/s", time.Since(start), want, 20*time.Microsecond)
		c.Close()
		s.Close()
		cancel()
		nw.Wait()
	})
}

func TestUntilGrid(t *testing.T) {
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(5 * grid)
	for _, tc := range []struct {
		at, want time.Duration // from now
	}{
		{0, 0},
		{-3 * grid, 0},
		{grid, grid},
		{grid / 3, grid},
		{7*grid + 1, 8 * grid},
	} {
		if got := untilGrid(now, now.Add(tc.at)); got != tc.want {
			t.Errorf("untilGrid(now, now+%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if got := untilGrid(now.Add(grid/2), now.Add(grid)); got != grid/2 {
		t.Errorf("from off the grid: got %v, want %v", got, grid/2)
	}
}

func TestConnSemantics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); synctest.Wait() }()
		nw := NewNetwork(ctx)
		a, _ := nw.AddHost(hostAddr(0), nil, Link{Latency: time.Millisecond})
		b, _ := nw.AddHost(hostAddr(1), nil, Link{Latency: time.Millisecond})
		if _, err := a.Dial(ctx, netip.AddrPortFrom(b.Addr(), 1)); !errors.Is(err, errRefused) {
			t.Errorf("dial to a closed port: got %v, want refused", err)
		}
		if _, err := a.Dial(ctx, netip.AddrPortFrom(hostAddr(9), 1)); !errors.Is(err, errNoHost) {
			t.Errorf("dial to no host: got %v, want no route", err)
		}
		ln, _ := b.Listen(":0")
		if _, err := b.Listen(ln.Addr().String()); err == nil {
			t.Error("a second listener on the same port was allowed")
		}
		c, err := a.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := ln.Accept()
		if got := s.RemoteAddr().String(); netip.MustParseAddrPort(got).Addr() != a.Addr() {
			t.Errorf("accepted conn from %s, want %s", got, a.Addr())
		}
		s.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past its deadline: got %v, want deadline exceeded", err)
		}
		s.SetReadDeadline(time.Time{})
		c.Write([]byte("hello"))
		c.Close()
		b5 := make([]byte, 5)
		if _, err := io.ReadFull(s, b5); err != nil || string(b5) != "hello" {
			t.Errorf("read %q, %v; want hello", b5, err)
		}
		if _, err := s.Read(b5); err != io.EOF {
			t.Errorf("read after the peer closed: got %v, want EOF", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write after close: got %v, want closed", err)
		}
		s.Close()
		ln.Close()
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("accept on a closed listener: got %v, want closed", err)
		}
	})
}

// TestSwarm50 runs murder's engine and tracker on 50 simulated hosts: every
// host ends with every piece hashed and written, and a seed repeats the
// same artifact (TestArtifactSeed: and another seed another one).
func TestSwarm50(t *testing.T) {
	cfg := Config{
		Hosts: 50, Size: 4 << 20, Link: Link{Up: 8 << 20, Down: 8 << 20, Latency: time.Millisecond},
		Datacenters: 2, WAN: 32 << 20, Slow: 0.1, SlowLink: Link{Up: 2 << 20, Down: 2 << 20, Latency: time.Millisecond},
		Late: 0.1, LateBy: time.Second, Seed: 7,
	}
	var runs []Result
	for range 2 {
		synctest.Test(t, func(t *testing.T) {
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Missing != 0 || len(res.Done) != cfg.Hosts {
				t.Fatalf("got %d hosts done and %d missing, want all %d done", len(res.Done), res.Missing, cfg.Hosts)
			}
			if len(res.WANIn) != 1 || res.WANIn[0] < 1 {
				t.Errorf("WAN into the second datacenter carried %v copies, want at least 1", res.WANIn)
			}
			if res.Quantile(1) < res.Bound {
				t.Errorf("last host done at %v, before the bound %v", res.Quantile(1), res.Bound)
			}
			t.Logf("bound %v, first %v, median %v, last %v, seeder sent %.2f F, WAN in %.2f F",
				res.Bound, res.Quantile(0), res.Quantile(0.5), res.Quantile(1), res.SeedSent, res.WANIn[0])
			runs = append(runs, res)
		})
	}
	if len(runs) == 2 && runs[0].InfoHash != runs[1].InfoHash {
		t.Errorf("the same seed gave artifacts %x and %x", runs[0].InfoHash, runs[1].InfoHash)
	}
}

func TestStopAndLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res, err := Run(context.Background(), Config{
			Hosts: 20, Size: 2 << 20, Link: Link{Up: 4 << 20, Down: 4 << 20, Latency: time.Millisecond},
			Stop: 0.25, Late: 0.25, LateBy: 2 * time.Second, Seed: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stopped != 5 || res.Missing != 0 || len(res.Done) != 15 {
			t.Errorf("got %d stopped, %d missing, %d done; want 5, 0, 15", res.Stopped, res.Missing, len(res.Done))
		}
	})
}

func TestArtifactSeed(t *testing.T) {
	hash := func(seed uint64) [20]byte {
		var res Result
		synctest.Test(t, func(t *testing.T) {
			var err error
			res, err = Run(context.Background(), Config{Hosts: 2, Size: 256 << 10, Link: Link{Up: 8 << 20, Down: 8 << 20}, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
		})
		return res.InfoHash
	}
	if a, b := hash(1), hash(2); a == b {
		t.Errorf("seeds 1 and 2 gave the same artifact %x", a)
	}
}
