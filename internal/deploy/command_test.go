package deploy

import (
	"slices"
	"testing"
	"time"
)

func TestCommandArgs(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"seed", seedCommand{Torrent: "/tmp/v1.tgz.torrent", IP: "10.0.0.1"}.args(),
			[]string{"seed", "--torrent", "/tmp/v1.tgz.torrent", "--ip", "10.0.0.1"}},
		{"seed with listen and rate", seedCommand{Torrent: "t", IP: "127.0.0.1", Listen: "127.0.0.1:0", MaxUploadRate: "10MB"}.args(),
			[]string{"seed", "--torrent", "t", "--ip", "127.0.0.1", "--listen", "127.0.0.1:0", "--max-upload-rate", "10MB"}},
		{"peer", peerCommand{Torrent: "t", Destination: "/srv", IP: "10.0.0.2", SeedTime: 30 * time.Second, Timeout: time.Hour}.args(),
			[]string{"peer", "--torrent", "t", "--destination-path", "/srv", "--ip", "10.0.0.2", "--seed-time", "30s", "--timeout", "1h0m0s", "--progress", "json"}},
		{"peer with everything", peerCommand{Torrent: "t", Destination: "/srv", TempPath: "/tmp", IP: "::1", Listen: "[::1]:0",
			SeedTime: time.Second, Timeout: time.Minute, NoTagDirectory: true, UnsafePleaseDelete: true, PathIsFile: true,
			MaxUploadRate: "1MB", MaxDownloadRate: "2MB"}.args(),
			[]string{"peer", "--torrent", "t", "--destination-path", "/srv", "--temp-path", "/tmp", "--ip", "::1", "--listen", "[::1]:0",
				"--seed-time", "1s", "--timeout", "1m0s", "--progress", "json", "--no-tag-directory", "--unsafe-please-delete",
				"--path-is-file", "--max-upload-rate", "1MB", "--max-download-rate", "2MB"}},
		{"peer with metrics_port", peerCommand{Torrent: "t", Destination: "/srv", IP: "10.0.0.2", SeedTime: time.Second, Timeout: time.Minute,
			MetricsListen: metricsListen(9100)}.args(),
			[]string{"peer", "--torrent", "t", "--destination-path", "/srv", "--ip", "10.0.0.2", "--seed-time", "1s", "--timeout", "1m0s",
				"--progress", "json", "--metrics-listen", ":9100"}},
		{"seed with metrics_port", seedCommand{Torrent: "t", IP: "10.0.0.1", MetricsListen: seederMetricsListen(9100)}.args(),
			[]string{"seed", "--torrent", "t", "--ip", "10.0.0.1", "--metrics-listen", ":9101"}},
		{"no metrics_port", seedCommand{Torrent: "t", IP: "10.0.0.1", MetricsListen: seederMetricsListen(0)}.args(),
			[]string{"seed", "--torrent", "t", "--ip", "10.0.0.1"}},
		{"seed in a datacenter", seedCommand{Torrent: "t", IP: "10.0.0.1", Datacenter: "east", Rack: "r1"}.args(),
			[]string{"seed", "--torrent", "t", "--ip", "10.0.0.1", "--datacenter", "east", "--rack", "r1"}},
		{"peer in a datacenter", peerCommand{Torrent: "t", Destination: "/srv", IP: "10.0.0.2", SeedTime: time.Second, Timeout: time.Minute, Datacenter: "west"}.args(),
			[]string{"peer", "--torrent", "t", "--destination-path", "/srv", "--ip", "10.0.0.2", "--seed-time", "1s", "--timeout", "1m0s", "--progress", "json", "--datacenter", "west"}},
		{"seed with allow_from", seedCommand{Torrent: "t", IP: "10.0.0.1", AllowFrom: []string{"10.0.0.0/8", "192.0.2.7/32"}}.args(),
			[]string{"seed", "--torrent", "t", "--ip", "10.0.0.1", "--allow-from", "10.0.0.0/8", "--allow-from", "192.0.2.7/32"}},
		{"peer on loopback with no per-address limit", peerCommand{Torrent: "t", Destination: "/srv", IP: "127.0.0.1", SeedTime: time.Second, Timeout: time.Minute,
			AllowFrom: []string{"127.0.0.1/32"}, MaxConnsPerIP: "0"}.args(),
			[]string{"peer", "--torrent", "t", "--destination-path", "/srv", "--ip", "127.0.0.1", "--seed-time", "1s", "--timeout", "1m0s", "--progress", "json",
				"--allow-from", "127.0.0.1/32", "--max-conns-per-ip", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if got, want := shellWords([]string{"peer", "it's", "$T"}), `'peer' 'it'\''s' '$T'`; got != want {
		t.Errorf("shellWords: got %s, want %s", got, want)
	}
}
