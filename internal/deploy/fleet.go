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
	"time"

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
	// Limit and Roles select the hosts that the tasks over many hosts
	// work on (host specs as in the inventory; roles tracker, seeder,
	// peers); a host is selected when it is in Limit (if given) and has
	// one of Roles (if given). The deploy's tracker and seeder always
	// take part.
	Limit, Roles []string
	// DryRun makes every task print what each host would run, and run
	// nothing: no connection is opened and no local file is touched
	// (Plan does the same for a whole deploy).
	DryRun bool
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

	start time.Time // when the Fleet was made: the run's wall time starts there
	rec   recorder  // what each host's steps did
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
	if _, err := cfg.Inventory.Select(cfg.Limit, cfg.Roles); err != nil {
		return nil, err
	}
	return &Fleet{cfg: cfg, inv: cfg.Inventory, run: cfg.Runner, out: cfg.Out, log: cfg.Logger, conns: make(map[string]*connEntry), start: time.Now()}, nil
}

// Pick returns the hosts of hosts that --limit and --role select.
func (f *Fleet) Pick(hosts []fleet.Host) []fleet.Host {
	sel, _ := f.inv.Select(f.cfg.Limit, f.cfg.Roles)
	var out []fleet.Host
	for _, h := range hosts {
		if sel(h) {
			out = append(out, h)
		}
	}
	return out
}

// Result reports the run so far over hosts (with any other host that
// failed), as `--json` prints it; err is what the task returned.
func (f *Fleet) Result(task, tag string, hosts []fleet.Host, err error) *Result {
	if f.cfg.DryRun {
		res := &Result{Task: task, Tag: tag, Hosts: []HostResult{}, DryRun: true}
		if err != nil {
			res.Error = err.Error()
		}
		return res
	}
	return f.rec.result(task, tag, specs(hosts), time.Since(f.start), err)
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
