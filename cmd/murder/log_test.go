package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogHandlerDurationsInSeconds(t *testing.T) {
	tests := []struct{ format, want string }{
		{logText, "interval_seconds=15 wait_seconds=0.25 n=3"},
		{logJSON, `"interval_seconds":15,"wait_seconds":0.25,"n":3`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log := slog.New(logHandler(tt.format, &buf, slog.LevelInfo))
		log.Info("m", "interval", 15*time.Second, "wait_seconds", 250*time.Millisecond, "n", 3)
		log.Debug("hidden")
		if got := buf.String(); !strings.Contains(got, tt.want) || strings.Count(got, "\n") != 1 {
			t.Errorf("%s: got %q, want one line with %q", tt.format, got, tt.want)
		}
	}
}

func TestLogFormatJSONErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"show", "/nonexistent.torrent", "--log-format", "json"}, 1, "no such file"},
		{[]string{"--log-format", "json", "show"}, 2, "want one .torrent FILE"},
		{[]string{"status", "--log-format", "json"}, 2, `required flag(s) "tracker" not set`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			root := newRootCmd()
			root.SetOut(&bytes.Buffer{})
			code := run(t.Context(), root, tt.args, &stderr)
			var rec struct {
				Level    string `json:"level"`
				Msg      string `json:"msg"`
				Command  string `json:"command"`
				ExitCode int    `json:"exit_code"`
			}
			if err := json.Unmarshal(stderr.Bytes(), &rec); err != nil || strings.Count(stderr.String(), "\n") != 1 {
				t.Fatalf("stderr %q is not one JSON line: %v", stderr.String(), err)
			}
			if code != tt.code || rec.ExitCode != tt.code || rec.Level != "ERROR" || !strings.Contains(rec.Msg, tt.msg) || !strings.HasPrefix(rec.Command, "murder ") {
				t.Errorf("got exit code %d and %+v, want %d and an ERROR record with %q", code, rec, tt.code, tt.msg)
			}
		})
	}
	var stderr bytes.Buffer
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	if code := run(t.Context(), root, []string{"version", "--log-format", "yaml"}, &stderr); code != 2 || !strings.Contains(stderr.String(), `--log-format "yaml": want text or json`) {
		t.Errorf("--log-format yaml: got exit code %d and %q, want 2 and the reason", code, stderr.String())
	}
}
