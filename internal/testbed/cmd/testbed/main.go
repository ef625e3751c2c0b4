// Command testbed starts a murder test bed by hand and keeps it up until
// interrupted, printing how to run commands in each host.
//
//	go run ./internal/testbed/cmd/testbed -hosts 4 -up 8MiB -down 8MiB -latency 10ms
//
// It needs root. Ctrl-C tears the bed down; a bed left by a killed run is
// removed by the next one.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/murder-deploy/murder/internal/testbed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("testbed", flag.ContinueOnError)
	hosts := fs.Int("hosts", 4, "number of hosts")
	up := fs.String("up", "0", "upload cap per host in bytes/s, with an optional KiB, MiB or GiB suffix, or Mbit (0 = none)")
	down := fs.String("down", "0", "download cap per host, like -up")
	latency := fs.Duration("latency", 0, "delay added to packets arriving at each host (round trip is twice this)")
	loss := fs.Float64("loss", 0, "fraction of arriving packets dropped at random (0 to 1)")
	dirs := fs.String("dirs", "", "comma-separated directories private to each host (default /tmp,/srv/murder,/usr/local/murder)")
	share := fs.String("share", "", "comma-separated paths kept visible inside the hosts (for example a murder binary under /tmp)")
	verbose := fs.Bool("v", false, "log what the bed does")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	u, err := parseRate(*up)
	if err != nil {
		return err
	}
	d, err := parseRate(*down)
	if err != nil {
		return err
	}
	cfg := testbed.Config{
		Hosts: *hosts,
		Link:  testbed.Link{Up: u, Down: d, Latency: *latency, Loss: *loss},
		Dirs:  splitList(*dirs),
		Share: splitList(*share),
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	setup, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	bed, err := testbed.New(setup, cfg)
	if err != nil {
		return err
	}
	defer bed.Close()
	for _, h := range bed.Hosts() {
		fmt.Printf("%-14s %-15s /tmp -> %s\n", h.Name(), h.Addr(), h.Path("/tmp"))
		fmt.Printf("    enter: %s\n", strings.Join(h.Command(ctx, "bash").Args, " "))
	}
	fmt.Println("up; Ctrl-C tears the bed down")
	<-ctx.Done()
	return bed.Close()
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parseRate reads bytes/s: "1048576", "8MiB", "512KiB", "1GiB", "64Mbit".
func parseRate(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"Gbit", 1e9 / 8}, {"Mbit", 1e6 / 8}, {"Kbit", 1e3 / 8}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("bad rate %q", s)
			}
			return int64(f * u.mult), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad rate %q (want bytes/s, for example 8MiB or 64Mbit)", s)
	}
	return n, nil
}
