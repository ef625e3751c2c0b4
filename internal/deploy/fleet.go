// Package deploy is Murder's workflow on top of the fleet runner: copy
// murder to the hosts, run the tracker and the seeder as detached daemons,
// create the torrent on the seeder and have every peer download it, with
// live progress and a per-host report. Local runs the same pipeline as
// processes on this machine.
package deploy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/murder-deploy/murder/internal/fleet"
)

// Config configures a Fleet.
type Config struct {
	// Inventory is the parsed murder.toml (required).
	Inventory *fleet.Inventory
	// Runner opens the SSH connections (required).
	Runner *fleet.Runner
	// Binary is the local murder binary that distribute-files copies;
	// "" means the running executable.
	Binary string
	// LocalTempPath keeps the .torrent on this machine between tasks; ""
	// means the inventory's temp_path.
	LocalTempPath string
	// Out receives the human report; nil discards it.
	Out io.Writer
	// Live redraws the progress line in place (Out is a terminal).
	Live bool
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
	// Verbose adds the time of each step to a deploy's summary.
	Verbose bool
}

// Fleet runs Murder's tasks on the hosts of an inventory. Connections are
// opened on first use and kept until Close; a host that could not be
// reached is not tried again by the same Fleet.
type Fleet struct {
	cfg Config
	inv *fleet.Inventory
	run *fleet.Runner
	out io.Writer
	log *slog.Logger

	mu    sync.Mutex
	conns map[string]*connEntry
}

// New returns a Fleet for cfg.
func New(cfg Config) (*Fleet, error) {
	if cfg.Inventory == nil || cfg.Runner == nil {
		return nil, errors.New("deploy: inventory and runner are required")
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LocalTempPath == "" {
		cfg.LocalTempPath = cfg.Inventory.TempPath
	}
	return &Fleet{cfg: cfg, inv: cfg.Inventory, run: cfg.Runner, out: cfg.Out, log: cfg.Logger, conns: make(map[string]*connEntry)}, nil
}

// Inventory returns the inventory the fleet works on.
func (f *Fleet) Inventory() *fleet.Inventory { return f.inv }

func (f *Fleet) say(format string, args ...any) {
	fmt.Fprintf(f.out, format+"\n", args...)
}

func (f *Fleet) header(task string, hosts int) {
	s := "s"
	if hosts == 1 {
		s = ""
	}
	f.say("==> %s (%d host%s)", task, hosts, s)
}
