package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/tracker"
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
