package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// spread is how fast pieces spread through a traced murder round, read
// from the debug lines of the seeder ("piece sent first") and the peers
// ("piece verified", with the source and the wait since the request).
// The durations are medians over the pieces every peer verified.
type spread struct {
	pieces    int
	firstCopy time.Duration // the seeder's first send to the first peer's verified copy
	midPeer   time.Duration // the seeder's first send to the median peer's copy
	midPeer90 time.Duration // its 90th percentile
	hop       time.Duration // the source's copy (or the seeder's send) to a peer's copy
	wait      time.Duration // a peer's request to its verified copy
}

func (s spread) String() string {
	return fmt.Sprintf("pieces spread: first copy %.2fs, median peer %.2fs (p90 %.2fs), per hop %.2fs of which request to verified %.2fs (%d pieces)",
		s.firstCopy.Seconds(), s.midPeer.Seconds(), s.midPeer90.Seconds(), s.hop.Seconds(), s.wait.Seconds(), s.pieces)
}

var (
	sentFirstLine = regexp.MustCompile(`^time=(\S+) level=DEBUG msg="piece sent first" piece=(\d+) `)
	verifiedLine  = regexp.MustCompile(`^time=(\S+) level=DEBUG msg="piece verified" piece=(\d+) from=(\S+) sources=\d+ wait=(\S+)`)
)

type copyOf struct {
	at   time.Time
	from netip.Addr
	wait time.Duration
}

// readSpread reads the seeder's log and each peer's (by the peer's
// address) and measures the spread.
func readSpread(seeder netip.Addr, seedLog string, peerLogs map[netip.Addr]string) (spread, error) {
	sent := map[int]time.Time{}
	err := scanLog(seedLog, sentFirstLine, func(m []string, at time.Time, k int) error {
		sent[k] = at
		return nil
	})
	if err != nil {
		return spread{}, err
	}
	copies := map[netip.Addr]map[int]copyOf{}
	for addr, path := range peerLogs {
		got := map[int]copyOf{}
		err := scanLog(path, verifiedLine, func(m []string, at time.Time, k int) error {
			from, err := netip.ParseAddrPort(m[3])
			if err != nil {
				return err
			}
			wait, err := time.ParseDuration(m[4])
			if err != nil {
				return err
			}
			got[k] = copyOf{at, from.Addr(), wait}
			return nil
		})
		if err != nil {
			return spread{}, err
		}
		copies[addr] = got
	}
	if len(sent) == 0 || len(copies) == 0 {
		return spread{}, errors.New("no piece lines in the logs (a murder build without them?)")
	}
	var first, mid, hops, waits []time.Duration
	for k, s := range sent {
		var at []time.Time
		for _, got := range copies {
			if c, ok := got[k]; ok {
				at = append(at, c.at)
			}
		}
		if len(at) < len(copies) {
			continue
		}
		slices.SortFunc(at, time.Time.Compare)
		first = append(first, at[0].Sub(s))
		mid = append(mid, at[len(at)/2].Sub(s))
	}
	for _, got := range copies {
		for k, c := range got {
			src, ok := sent[k]
			if c.from != seeder {
				var from copyOf
				from, ok = copies[c.from][k]
				src = from.at
			}
			if ok {
				hops = append(hops, c.at.Sub(src))
				waits = append(waits, c.wait)
			}
		}
	}
	if len(mid) == 0 {
		return spread{}, errors.New("no piece reached every peer in the logs")
	}
	return spread{
		pieces:    len(mid),
		firstCopy: quantile(first, 0.5),
		midPeer:   quantile(mid, 0.5),
		midPeer90: quantile(mid, 0.9),
		hop:       quantile(hops, 0.5),
		wait:      quantile(waits, 0.5),
	}, nil
}

// scanLog calls fn for each line of the file at path that re matches,
// with the line's time and piece (re's first two groups).
func scanLog(path string, re *regexp.Regexp, fn func(m []string, at time.Time, piece int) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		k, err := strconv.Atoi(m[2])
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := fn(m, at, k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return sc.Err()
}

// quantile returns the q-quantile of d (sorted in place); 0 when empty.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(int(float64(len(d))*q), len(d)-1)]
}
