package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Log formats of --log-format, a flag of every command.
const (
	logText = "text"
	logJSON = "json"
)

// addLogFormatFlag gives root and every command under it --log-format.
func addLogFormatFlag(root *cobra.Command) {
	root.PersistentFlags().String("log-format", logText,
		"format of the logs on stderr: text (key=value), or json (one object a line); durations are in seconds")
}

// logFormat returns the command's --log-format, checked.
func logFormat(cmd *cobra.Command) (string, error) {
	f := cmd.Flags().Lookup("log-format")
	if f == nil {
		return logText, nil
	}
	switch v := f.Value.String(); v {
	case logText, logJSON:
		return v, nil
	default:
		return "", usageError(fmt.Errorf("--log-format %q: want text or json", v))
	}
}

// newLogger returns the logger of a command: its --log-format at level,
// writing to w.
func newLogger(cmd *cobra.Command, w io.Writer, level slog.Level) (*slog.Logger, error) {
	format, err := logFormat(cmd)
	if err != nil {
		return nil, err
	}
	return slog.New(logHandler(format, w, level)), nil
}

func logHandler(format string, w io.Writer, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationSeconds}
	if format == logJSON {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// durationSeconds writes a duration as seconds, under a key that says so
// (interval=15s becomes interval_seconds=15), in both formats alike.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	key := a.Key
	if !strings.HasSuffix(key, "_seconds") {
		key += "_seconds"
	}
	return slog.Float64(key, a.Value.Duration().Seconds())
}

// writeErrorJSON reports a command's failure as one JSON log line, for
// --log-format json.
func writeErrorJSON(w io.Writer, command, msg string, code int) {
	b, _ := json.Marshal(struct {
		Time     string `json:"time"`
		Level    string `json:"level"`
		Msg      string `json:"msg"`
		Command  string `json:"command"`
		ExitCode int    `json:"exit_code"`
	}{time.Now().Format(time.RFC3339Nano), "ERROR", msg, command, code})
	fmt.Fprintf(w, "%s\n", b)
}
