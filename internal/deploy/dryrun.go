package deploy

import (
	"os"
	"strconv"
	"strings"

	"github.com/murder-deploy/murder/internal/fleet"
)

// dryRun is how every fleet task honours Config.DryRun: when it is set, it
// prints the task's header and, host by host, what line returns for that
// host (the command it would run there), then any notes, and reports true:
// the task returns without connecting to any host or touching a local
// file. Addresses that only SSH would find are shown as HOST.
func (f *Fleet) dryRun(task string, hosts []fleet.Host, line func(h fleet.Host) string, notes ...string) bool {
	if !f.cfg.DryRun {
		return false
	}
	s := "s"
	if len(hosts) == 1 {
		s = ""
	}
	f.say("==> %s (%d host%s, dry run: nothing is run)", task, len(hosts), s)
	for _, h := range hosts {
		f.say("  %s: %s", h.Spec, line(h))
	}
	for _, n := range notes {
		f.say("  %s", n)
	}
	return true
}

// bin is the remote murder binary, quoted for the shell.
func (f *Fleet) bin() string { return fleet.Quote(f.inv.Binary()) }

// dryTemp replaces the $T of a remote file name with the temp path, for
// printing.
func (f *Fleet) dryTemp(name string) string {
	name = strings.ReplaceAll(name, `"$T"`, "$T")
	return strings.ReplaceAll(name, "$T", fleet.Quote(f.inv.TempPath))
}

// dryStop is what a stop task runs on a host, for printing.
func (f *Fleet) dryStop(kind, pidFile string) string {
	return "stop the murder " + kind + " whose pid is in " + pidFile + " (TERM, then KILL after 10 s), remove the pid file"
}

// dryAnnounce is the address a host announces, for printing.
func dryAnnounce(h fleet.Host) string {
	if h.Announce != "" {
		return h.Announce
	}
	return "HOST"
}

// dryTrackerArgs are create's --tracker flags, for printing.
func (f *Fleet) dryTrackerArgs() string {
	var b strings.Builder
	for _, h := range f.trackers() {
		a := h.Announce
		if a == "" {
			a = h.Name
		}
		b.WriteString(" --tracker " + fleet.Quote(a+":"+strconv.Itoa(f.inv.TrackerPort)))
	}
	return b.String()
}

// localBinary is the binary distribute-files copies.
func (f *Fleet) localBinary() (string, error) {
	if f.cfg.Binary != "" {
		return f.cfg.Binary, nil
	}
	return os.Executable()
}
