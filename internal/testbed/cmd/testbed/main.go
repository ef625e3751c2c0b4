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
	"strings"
	"syscall"
	"time"

	"github.com/murder-deploy/murder/internal/bytesize"
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
	u, err := bytesize.ParseRate(*up)
	if err != nil {
		return err
	}
	d, err := bytesize.ParseRate(*down)
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
