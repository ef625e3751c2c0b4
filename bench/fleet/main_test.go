package main

import (
	"bytes"
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
