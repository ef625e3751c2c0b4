package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/tracker"
)

func TestFindSwarm(t *testing.T) {
	list := &tracker.SwarmList{Swarms: []tracker.SwarmSummary{
		{InfoHash: strings.Repeat("a", 40), Name: "v42.tgz"},
		{InfoHash: strings.Repeat("b", 40), Name: "v43.tgz"},
		{InfoHash: strings.Repeat("c", 40), Name: "v43.tar.zst"},
		{InfoHash: strings.Repeat("d", 40), Name: "plain"},
	}}
	tests := []struct{ tag, want, err string }{
		{"v42", strings.Repeat("a", 40), ""},
		{"v42.tgz", strings.Repeat("a", 40), ""},
		{"plain", strings.Repeat("d", 40), ""},
		{strings.Repeat("B", 40), strings.Repeat("b", 40), ""},
		{"v43.tgz", strings.Repeat("b", 40), ""},
		{"v43", "", "names several swarms: v43.tgz, v43.tar.zst"},
		{"v4", "", `no swarm named "v4"`},
	}
	for _, tt := range tests {
		got, err := findSwarm(list, tt.tag)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("findSwarm(%q): got %q, %v; want an error with %q", tt.tag, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("findSwarm(%q) = %q, %v; want %q", tt.tag, got, err, tt.want)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	fin := time.Date(2026, 1, 1, 12, 0, 9, 0, time.UTC)
	s := tracker.SwarmSummary{InfoHash: strings.Repeat("a", 40), Name: "v42.tgz", Size: 10 << 20, Seeders: 3, Leechers: 1, Completed: 2,
		Progress: 0.875, DownloadRate: 1 << 20, Deploy: &tracker.Deploy{Finished: &fin, Seconds: 9.25, Hosts: 2}}
	var buf bytes.Buffer
	printSwarms(&buf, &tracker.SwarmList{Swarms: []tracker.SwarmSummary{s}})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("got\n%s\nwant a header and one line", buf.String())
	}
	for _, want := range []string{"v42.tgz", "aaaaaaaaaaaa", "10.0 MiB", "87.5%", "1.0 MiB/s", "2 hosts done in 9.2s"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("swarm line %q lacks %q", lines[1], want)
		}
	}
	buf.Reset()
	printHosts(&buf, &tracker.SwarmDetail{SwarmSummary: s, Peers: []tracker.PeerStatus{
		{Address: "10.0.0.1:6881", Datacenter: "ams", Rack: "r1", State: "seeding", Progress: 1},
		{Address: "10.0.0.2:6881", State: "downloading", Progress: 0.5, Left: 5 << 20, DownloadRate: 2 << 20},
	}})
	out := buf.String()
	for _, want := range []string{"v42.tgz " + s.InfoHash, "10.0.0.1:6881", "ams/r1", "seeding", "10.0.0.2:6881", "50.0%", "5.0 MiB", "2.0 MiB/s", "downloading"} {
		if !strings.Contains(out, want) {
			t.Errorf("hosts view lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	printSwarms(&buf, &tracker.SwarmList{})
	if buf.String() != "no swarms on this tracker\n" {
		t.Errorf("empty list: got %q", buf.String())
	}
}
