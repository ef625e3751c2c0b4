package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPassWatch feeds passWatch a seeder log cut into writes at every
// point: it must pass the log on whole and note the pass once the clock
// has started, and only then.
func TestPassWatch(t *testing.T) {
	log := "time=1 level=DEBUG msg=connected peer=198.18.0.3:1\n" +
		"time=2 level=DEBUG msg=\"every piece went out once\" uploaded=1 early_dups=0\n" +
		"time=3 level=INFO msg=\"seeding stopped\"\n"
	for cut := range len(log) {
		var out bytes.Buffer
		p := &passWatch{w: &out}
		p.started(time.Now().Add(-time.Second))
		p.Write([]byte(log[:cut]))
		p.Write([]byte(log[cut:]))
		if out.String() != log {
			t.Fatalf("cut at %d: passed on %q, want the log", cut, out.String())
		}
		if p.ended() < time.Second {
			t.Fatalf("cut at %d: pass at %v, want it noted (after the 1 s since the start)", cut, p.ended())
		}
	}

	p := &passWatch{} // the clock has not started: nothing to note
	p.Write([]byte(log))
	if p.ended() != 0 {
		t.Errorf("pass noted at %v before the clock started", p.ended())
	}
	p = &passWatch{}
	p.started(time.Now())
	p.Write([]byte(strings.Replace(log, "every piece", "some piece", 1)))
	if p.ended() != 0 {
		t.Errorf("pass noted at %v from a log without it", p.ended())
	}
}

// TestReadSpread measures a two-peer round from its log lines: piece 0
// goes seeder → .3 → .4, piece 1 seeder → .4 → .3, piece 2 reaches only
// .3 and is left out of the per-piece figures.
func TestReadSpread(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	line := func(ms int, rest string) string {
		return "time=" + t0.Add(time.Duration(ms)*time.Millisecond).Format(time.RFC3339Nano) + " level=DEBUG " + rest + "\n"
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seedLog := write("seed.log", line(0, `msg=connected peer=198.18.0.3:6881`)+
		line(0, `msg="piece sent first" piece=0 to=198.18.0.3:40000`)+
		line(10, `msg="piece sent first" piece=1 to=198.18.0.4:6881`)+
		line(20, `msg="piece sent first" piece=2 to=198.18.0.3:40000`))
	h3 := write("h3.log", line(100, `msg="piece verified" piece=0 from=198.18.0.2:6881 sources=1 wait=90ms`)+
		line(410, `msg="piece verified" piece=1 from=198.18.0.4:6881 sources=1 wait=200ms`)+
		line(500, `msg="piece verified" piece=2 from=198.18.0.2:6881 sources=1 wait=1ms`)+
		`1.0s {"event":"done"}`+"\n")
	h4 := write("h4.log", line(300, `msg="piece verified" piece=0 from=198.18.0.3:6881 sources=2 wait=150ms`)+
		line(210, `msg="piece verified" piece=1 from=198.18.0.2:6881 sources=1 wait=1.2s`))
	seeder := netip.MustParseAddr("198.18.0.2")
	peers := map[netip.Addr]string{netip.MustParseAddr("198.18.0.3"): h3, netip.MustParseAddr("198.18.0.4"): h4}
	got, err := readSpread(seeder, seedLog, peers)
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	// First copies 100 and 200 ms; median peer (the later of two) 300 and
	// 400 ms; hops 100, 200, 200, 200 and 480 (piece 2) ms; waits 1, 90,
	// 150, 200 and 1200 ms.
	want := spread{pieces: 2, firstCopy: 200 * ms, midPeer: 400 * ms, midPeer90: 400 * ms, hop: 200 * ms, wait: 150 * ms}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	if _, err := readSpread(seeder, write("empty.log", "time=x level=INFO msg=seeding\n"), peers); err == nil {
		t.Error("a seeder log without piece lines was accepted")
	}
	if _, err := readSpread(seeder, seedLog, map[netip.Addr]string{netip.MustParseAddr("198.18.0.3"): filepath.Join(dir, "missing.log")}); err == nil {
		t.Error("a missing peer log was accepted")
	}
}

// TestCPUUse reads two /proc/stat lines and splits the ticks between them.
func TestCPUUse(t *testing.T) {
	//                        user nice sys idle iowait irq softirq steal guest guest_nice
	t0 := parseCPUTimes("cpu  100 0 200 1000 50 0 10 0 40 0")
	t1 := parseCPUTimes("cpu  130 10 260 1100 50 20 50 10 60 0")
	// 40 user, 80 sys, 100 idle, 40 softirq, 10 steal: 270 ticks.
	got := t1.since(t0)
	want := cpuUse{busy: 170.0 / 270, user: 40.0 / 270, sys: 80.0 / 270, softirq: 40.0 / 270, steal: 10.0 / 270}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if s, w := got.String(), " 63% (user 15, sys 30, softirq 15, steal 4)"; s != w {
		t.Errorf("String() = %q, want %q", s, w)
	}
	for _, line := range []string{"", "intr 1 2 3", "cpu0 1 2 3 4"} {
		if got := parseCPUTimes(line); got != (cpuTimes{}) {
			t.Errorf("parseCPUTimes(%q) = %v, want zero", line, got)
		}
	}
	if got := t0.since(t0); got != (cpuUse{}) {
		t.Errorf("no ticks between: got %+v, want zero", got)
	}
}
