package main

import (
	"bytes"
	"context"
	"errors"
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
	cmd := newTrackerCmd()
	cmd.SetArgs([]string{"--listen", addr, "--interval", "20s", "--log-format", "json"})
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
			cmd := newTrackerCmd()
			cmd.SetArgs(tt.args)
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.ExecuteContext(context.Background())
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want exit code 2 and %q", err, tt.want)
			}
		})
	}
}
