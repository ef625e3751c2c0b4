package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/tracker"

	"github.com/murder-deploy/murder/internal/testenv"
)

func TestTrackerCmdServesAndStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs([]string{"tracker", "--listen", addr, "--interval", "20s", "--log-format", "json"})
	cmd.SetErr(&logs)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	c := tracker.NewClient([][]string{{"http://" + addr + "/announce"}}, tracker.ClientConfig{Timeout: time.Second})
	var resp *tracker.AnnounceResponse
	for i := 0; ; i++ {
		resp, err = c.Announce(ctx, tracker.AnnounceRequest{Port: 1, Left: 1, Event: tracker.EventStarted})
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("tracker never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp.Interval != 20*time.Second {
		t.Errorf("interval %s, want the 20s of --interval", resp.Interval)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tracker returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tracker did not stop after cancel")
	}
	if !strings.Contains(logs.String(), `"msg":"tracker stopped"`) {
		t.Errorf("logs lack the stop line:\n%s", logs.String())
	}
}

func TestTrackerCmdBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--interval", "10ms"}, "--interval 10ms is too short"},
		{[]string{"--numwant-max", "0"}, "--numwant-max must be at least 1"},
		{[]string{"--store", "mysql://db:3306"}, `--store: tracker: redis URL "mysql://db:3306": scheme "mysql"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			var stderr bytes.Buffer
			root := newRootCmd()
			root.SetOut(&bytes.Buffer{})
			code := run(context.Background(), root, append([]string{"tracker"}, tt.args...), &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("got exit code %d and %q, want 2 and %q", code, stderr.String(), tt.want)
			}
		})
	}
}

// TestTrackerCmdTopologySIGHUP places peers by --topology and re-reads
// the file on SIGHUP, keeping the old one when the new one is bad.
func TestTrackerCmdTopologySIGHUP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	topo := filepath.Join(t.TempDir(), "topology.toml")
	write := func(dc string) {
		t.Helper()
		body := fmt.Sprintf("[[datacenter]]\nname = %q\ncidrs = [\"198.18.0.0/15\"]\n", dc)
		if err := os.WriteFile(topo, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("east")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.Buffer
	cmd := newTrackerCmd()
	cmd.SetArgs([]string{"--listen", addr, "--topology", topo})
	cmd.SetErr(&logs)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	c := tracker.NewClient([][]string{{"http://" + addr + "/announce"}}, tracker.ClientConfig{Timeout: time.Second})
	place := func() (tracker.Place, error) {
		r, err := c.Announce(ctx, tracker.AnnounceRequest{Port: 1, Left: 1, IP: "198.18.0.7"})
		if err != nil {
			return tracker.Place{}, err
		}
		return r.Place, nil
	}
	waitPlace := func(want string) {
		t.Helper()
		var got tracker.Place
		for i := 0; ; i++ {
			got, err = place()
			if err == nil && got.Datacenter == want {
				return
			}
			if i == 100 {
				t.Fatalf("place %+v (%v), want %s", got, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitPlace("east")
	write("west")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitPlace("west")
	if err := os.WriteFile(topo, []byte("[[datacenter]]\nname = \"x y\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for i := 0; !strings.Contains(logs.String(), "topology not reloaded"); i++ {
		if i == 100 {
			t.Fatalf("no log of the bad file:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "line 2") {
		t.Errorf("log of the bad file lacks its line:\n%s", logs.String())
	}
	waitPlace("west")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tracker returned %v", err)
	}
}

func TestTrackerCmdBadTopology(t *testing.T) {
	topo := filepath.Join(t.TempDir(), "topology.toml")
	if err := os.WriteFile(topo, []byte("[[datacenter]]\nname = \"east\"\ncidrs = [\"10.0.0.1/8\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newTrackerCmd()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--topology", topo})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.ExecuteContext(context.Background())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "did you mean 10.0.0.0/8") {
		t.Errorf("got %v, want exit code 2, line 3 and the reason", err)
	}
}
