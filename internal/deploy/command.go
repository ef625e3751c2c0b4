package deploy

import (
	"strconv"
	"strings"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
)

// seedCommand is the command line of `murder seed`, for a deploy on this
// machine (--local) and on a fleet alike.
type seedCommand struct {
	Torrent       string // path of the .torrent on the seeder host
	IP            string // address announced to the tracker
	Listen        string // "" = the seeder's default
	MaxUploadRate string // "" = no limit
	MetricsListen string // "" = no metrics endpoint
	Datacenter    string // "" = left to the tracker
	Rack          string
	AllowFrom     []string // --allow-from, each
	MaxConnsPerIP string   // "" = the default
}

// args returns the command line without the binary.
func (s seedCommand) args() []string {
	a := []string{"seed", "--torrent", s.Torrent, "--ip", s.IP}
	if s.Listen != "" {
		a = append(a, "--listen", s.Listen)
	}
	if s.MaxUploadRate != "" {
		a = append(a, "--max-upload-rate", s.MaxUploadRate)
	}
	if s.MetricsListen != "" {
		a = append(a, "--metrics-listen", s.MetricsListen)
	}
	a = appendConns(a, s.AllowFrom, s.MaxConnsPerIP)
	return appendPlace(a, s.Datacenter, s.Rack)
}

// appendConns appends --allow-from for each entry and --max-conns-per-ip
// when set.
func appendConns(a, allowFrom []string, perIP string) []string {
	for _, c := range allowFrom {
		a = append(a, "--allow-from", c)
	}
	if perIP != "" {
		a = append(a, "--max-conns-per-ip", perIP)
	}
	return a
}

// appendPlace appends --datacenter and --rack when they are known.
func appendPlace(a []string, datacenter, rack string) []string {
	if datacenter != "" {
		a = append(a, "--datacenter", datacenter)
		if rack != "" {
			a = append(a, "--rack", rack)
		}
	}
	return a
}

// peerCommand is the command line of `murder peer`, which reports its
// progress as JSON lines on standard output.
type peerCommand struct {
	Torrent     string // path of the .torrent on the peer's host
	Destination string
	TempPath    string        // "" = the peer's default
	IP          string        // address announced to the tracker
	Listen      string        // "" = the peer's default
	SeedTime    time.Duration // how long it seeds on once the files are in place
	Timeout     time.Duration // bound on the peer's whole run

	NoTagDirectory     bool
	UnsafePleaseDelete bool
	PathIsFile         bool

	MaxUploadRate, MaxDownloadRate string // "" = no limit
	MetricsListen                  string // "" = no metrics endpoint

	Datacenter, Rack string // "" = left to the tracker

	AllowFrom     []string // --allow-from, each
	MaxConnsPerIP string   // "" = the default

	AllowedSigners string // "" = no signature check

	// StatusFD, when set, is the file descriptor on which the peer writes
	// its JSON progress and which it closes once its files are in place
	// (or it failed); otherwise the events go to standard output.
	StatusFD int
}

// args returns the command line without the binary.
func (p peerCommand) args() []string {
	a := []string{"peer", "--torrent", p.Torrent, "--destination-path", p.Destination}
	if p.TempPath != "" {
		a = append(a, "--temp-path", p.TempPath)
	}
	a = append(a, "--ip", p.IP)
	if p.Listen != "" {
		a = append(a, "--listen", p.Listen)
	}
	a = append(a, "--seed-time", p.SeedTime.String(), "--timeout", p.Timeout.String())
	if p.StatusFD > 0 {
		a = append(a, "--status-fd", strconv.Itoa(p.StatusFD))
	} else {
		a = append(a, "--progress", "json")
	}
	if p.NoTagDirectory {
		a = append(a, "--no-tag-directory")
	}
	if p.UnsafePleaseDelete {
		a = append(a, "--unsafe-please-delete")
	}
	if p.PathIsFile {
		a = append(a, "--path-is-file")
	}
	if p.MaxUploadRate != "" {
		a = append(a, "--max-upload-rate", p.MaxUploadRate)
	}
	if p.MaxDownloadRate != "" {
		a = append(a, "--max-download-rate", p.MaxDownloadRate)
	}
	if p.MetricsListen != "" {
		a = append(a, "--metrics-listen", p.MetricsListen)
	}
	a = appendConns(a, p.AllowFrom, p.MaxConnsPerIP)
	if p.AllowedSigners != "" {
		a = append(a, "--allowed-signers", p.AllowedSigners)
	}
	return appendPlace(a, p.Datacenter, p.Rack)
}

// metricsListen is the --metrics-listen address for port, "" for 0.
func metricsListen(port int) string {
	if port == 0 {
		return ""
	}
	return ":" + strconv.Itoa(port)
}

// seederMetricsListen is the seeder's --metrics-listen address for the
// inventory's metrics port: the port after the peers'.
func seederMetricsListen(port int) string {
	if port == 0 {
		return ""
	}
	return metricsListen(port + 1)
}

// shellWords quotes every argument for a POSIX shell and joins them.
func shellWords(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fleet.Quote(a)
	}
	return strings.Join(q, " ")
}
