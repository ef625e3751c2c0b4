package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/tracker"
)

func newStatusCmd() *cobra.Command {
	var (
		addr   string
		asJSON bool
		watch  bool
		every  time.Duration
		tag    string
	)
	cmd := &cobra.Command{
		Use:   "status --tracker HOST:PORT [--tag TAG] [--json] [--watch]",
		Short: "Show what a tracker sees: swarms, deploys and per-host progress",
		Long: `status asks a murder tracker what it sees, through the JSON API behind
its live page (http://HOST:PORT/, docs/status.md): one line per swarm with
its name, info hash, size, seeders, peers still downloading, completed
downloads, mean progress, download rate and deploy; with --tag, one line
per host of that swarm.

--tag TAG picks the swarm named TAG, or TAG.tgz and the like (murder's
artifact names), or the swarm with that info hash.

--json prints the API's answer as it is: /api/swarms, or
/api/swarms/INFOHASH with --tag. --watch repeats every --interval until
interrupted (with --json, one JSON document a line).`,
		Example: `  murder status --tracker tracker:8998
  murder status --tracker tracker:8998 --tag v42 --watch
  murder status --tracker tracker:8998 --json | jq '.swarms[].name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if every < 100*time.Millisecond {
				return usageError(fmt.Errorf("--interval %s is too short, want at least 100ms", every))
			}
			api := tracker.NewAPIClient(addr)
			out := cmd.OutOrStdout()
			clear := watch && !asJSON && isTerminal(out)
			for {
				err := showStatus(cmd.Context(), out, api, tag, asJSON, clear)
				if err != nil || !watch {
					return err
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "tracker", "", "the tracker, HOST:PORT (or its announce URL) (required)")
	f.StringVar(&tag, "tag", "", "show the hosts of this swarm: a tag, a torrent's name or an info hash")
	f.BoolVar(&asJSON, "json", false, "print the tracker's JSON answer instead of a table")
	f.BoolVar(&watch, "watch", false, "repeat until interrupted")
	f.DurationVar(&every, "interval", 2*time.Second, "with --watch, how often to ask")
	_ = cmd.MarkFlagRequired("tracker")
	return cmd
}

// showStatus prints one view of the tracker.
func showStatus(ctx context.Context, w io.Writer, api *tracker.APIClient, tag string, asJSON, clear bool) error {
	list, err := api.Swarms(ctx)
	if err != nil {
		return err
	}
	var view any = list
	var detail *tracker.SwarmDetail
	if tag != "" {
		hash, err := findSwarm(list, tag)
		if err != nil {
			return err
		}
		if detail, err = api.Swarm(ctx, hash); err != nil {
			return err
		}
		view = detail
	}
	if asJSON {
		b, err := json.Marshal(view)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if clear {
		fmt.Fprint(w, "\x1b[H\x1b[2J")
	}
	if detail != nil {
		printHosts(w, detail)
		return nil
	}
	printSwarms(w, list)
	return nil
}

// findSwarm returns the info hash of the swarm tag names.
func findSwarm(list *tracker.SwarmList, tag string) (string, error) {
	var found []tracker.SwarmSummary
	for _, s := range list.Swarms {
		if s.InfoHash == strings.ToLower(tag) || s.Name == tag {
			return s.InfoHash, nil
		}
		if strings.HasPrefix(s.Name, tag+".") {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no swarm named %q on the tracker (murder status without --tag lists them)", tag)
	case 1:
		return found[0].InfoHash, nil
	}
	names := make([]string, len(found))
	for i, s := range found {
		names[i] = s.Name
	}
	return "", errors.New("--tag " + tag + " names several swarms: " + strings.Join(names, ", ") + "; give the full name or the info hash")
}

func printSwarms(w io.Writer, list *tracker.SwarmList) {
	if len(list.Swarms) == 0 {
		fmt.Fprintln(w, "no swarms on this tracker")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINFO HASH\tSIZE\tSEEDERS\tPEERS\tCOMPLETED\tPROGRESS\tDOWNLOAD\tDEPLOY")
	for _, s := range list.Swarms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", orDash(s.Name), s.InfoHash[:12], sizeOrDash(s.Size),
			s.Seeders, s.Leechers, s.Completed, percent(s.Progress), rateOrDash(s.DownloadRate), deployText(s.Deploy))
	}
	tw.Flush()
}

func printHosts(w io.Writer, d *tracker.SwarmDetail) {
	fmt.Fprintf(w, "%s %s: %s, %d seeders, %d peers, %d completed, deploy %s\n", orDash(d.Name), d.InfoHash,
		sizeOrDash(d.Size), d.Seeders, d.Leechers, d.Completed, deployText(d.Deploy))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tDATACENTER/RACK\tPROGRESS\tDOWNLOAD\tUPLOAD\tLEFT\tSTATE")
	for _, p := range d.Peers {
		place := p.Datacenter
		if p.Rack != "" {
			place += "/" + p.Rack
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Address, orDash(place), percent(p.Progress),
			rateOrDash(p.DownloadRate), rateOrDash(p.UploadRate), humanBytes(p.Left), p.State)
	}
	tw.Flush()
}

func deployText(d *tracker.Deploy) string {
	switch {
	case d == nil:
		return "-"
	case d.Finished != nil:
		return fmt.Sprintf("%d hosts done in %.1fs", d.Hosts, d.Seconds)
	}
	return fmt.Sprintf("running %.1fs, %d hosts done", d.Seconds, d.Hosts)
}

func percent(p float64) string { return fmt.Sprintf("%.1f%%", 100*p) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sizeOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return humanBytes(n)
}

func rateOrDash(r float64) string {
	if r <= 0 {
		return "-"
	}
	return humanBytes(int64(r)) + "/s"
}
