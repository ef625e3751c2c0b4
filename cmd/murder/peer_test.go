package main

import (
	"slices"
	"strings"
	"testing"
)

func TestDetachedArgs(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{
			in:   []string{"peer", "--torrent", "a.torrent", "--detach", "--progress", "json"},
			want: []string{"peer", "--torrent", "a.torrent", "--progress", "json", "--status-fd=3", "--progress=none"},
		},
		{
			in:   []string{"peer", "--detach=true", "--seed-time", "1m"},
			want: []string{"peer", "--seed-time", "1m", "--status-fd=3", "--progress=none"},
		},
	}
	for _, tt := range tests {
		if got := detachedArgs(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("detachedArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSeedPeerFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"peer", "--destination-path", "/x"}, `required flag(s) "torrent" not set`},
		{[]string{"peer", "--torrent", "a.torrent"}, `required flag(s) "destination-path" not set`},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--max-upload-rate", "fast"}, "--max-upload-rate"},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--max-download-rate", "10XB"}, "--max-download-rate"},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--progress", "xml"}, `unknown progress mode "xml"`},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--seed-time", "soon"}, `invalid argument "soon"`},
		{[]string{"seed"}, `required flag(s) "torrent" not set`},
		{[]string{"seed", "--torrent", "a", "--max-upload-rate", "-1"}, "--max-upload-rate"},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--datacenter", "east coast"}, "--datacenter: tracker: datacenter name"},
		{[]string{"peer", "--torrent", "a", "--destination-path", "d", "--rack", "r1"}, "--rack needs --datacenter"},
		{[]string{"seed", "--torrent", "a", "--datacenter", "east", "--rack", "r/1"}, "--rack: tracker: rack name"},
		{[]string{"seed", "--torrent", "a", "--datacenter", strings.Repeat("x", 65)}, "longer than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(tt.args)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}
