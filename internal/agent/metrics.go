package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/metrics"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/swarm"
)

// runMetrics is what a seed or peer run reports at /metrics: its state
// and, once it exists, its swarm's counters. It is safe for concurrent use;
// the zero value has no state and no swarm.
type runMetrics struct {
	mu    sync.Mutex
	state string
	sw    *swarm.Swarm
}

// setState records the run's state (one of the State constants).
func (m *runMetrics) setState(s string) {
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
}

// setSwarm records the run's swarm, whose Stats are read at each scrape.
func (m *runMetrics) setSwarm(sw *swarm.Swarm) {
	m.mu.Lock()
	m.sw = sw
	m.mu.Unlock()
}

// snapshot returns the swarm's numbers (ok is false before there is a
// swarm) and the run's state.
func (m *runMetrics) snapshot() (st swarm.Stats, state string, ok bool) {
	m.mu.Lock()
	sw, state := m.sw, m.state
	m.mu.Unlock()
	if sw == nil {
		return swarm.Stats{}, state, false
	}
	return sw.Stats(), state, true
}

// snapshotFunc reads a run's numbers at scrape time; see
// runMetrics.snapshot.
type snapshotFunc func() (st swarm.Stats, state string, ok bool)

// serveMetrics serves a run's metrics for the torrent mi at
// http://addr/metrics until stop is called or ctx ends. It fails at once
// when addr cannot be bound. docs/metrics.md describes the metrics.
func serveMetrics(ctx context.Context, addr string, log *slog.Logger, mi *metainfo.MetaInfo, snap snapshotFunc) (stop func(), err error) {
	tag := mi.Info.Name
	if _, t, ok := bundle.ParseArtifactName(mi.Info.Name); ok {
		tag = t
	}
	reg := metrics.NewRegistry()
	if err := reg.Register(newSwarmCollector(tag, mi.InfoHash().String(), snap)); err != nil {
		return nil, fmt.Errorf("agent: metrics: %w", err)
	}
	srv, err := metrics.Listen(ctx, addr, reg, log)
	if err != nil {
		return nil, fmt.Errorf("agent: --metrics-listen: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// runStates are the values of murder_swarm_state's state label.
func runStates() []string {
	return []string{progress.StateChecking, progress.StateDownloading, progress.StateDownloaded, progress.StatePlacing, progress.StateSeeding, progress.StateDone}
}

// swarmCollector turns a run's snapshot into metrics at scrape time.
type swarmCollector struct {
	snap snapshotFunc

	downloaded, uploaded, verified, size *prometheus.Desc
	downRate, upRate, peers, banned      *prometheus.Desc
	unrequested, refused                 *prometheus.Desc
	state, received                      *prometheus.Desc
}

func newSwarmCollector(tag, infoHash string, snap snapshotFunc) *swarmCollector {
	labels := prometheus.Labels{"tag": tag, "info_hash": infoHash}
	desc := func(name, help string, varLabels ...string) *prometheus.Desc {
		return prometheus.NewDesc("murder_swarm_"+name, help, varLabels, labels)
	}
	return &swarmCollector{
		snap:        snap,
		downloaded:  desc("downloaded_bytes_total", "Payload bytes received from peers in this run, duplicates and bad pieces included."),
		uploaded:    desc("uploaded_bytes_total", "Payload bytes sent to peers in this run."),
		verified:    desc("verified_bytes", "Bytes of the torrent verified on disk."),
		size:        desc("size_bytes", "Bytes of the torrent in all."),
		downRate:    desc("download_rate_bytes_per_second", "Payload download rate, smoothed over a few seconds."),
		upRate:      desc("upload_rate_bytes_per_second", "Payload upload rate, smoothed over a few seconds."),
		peers:       desc("peers", "Peers connected now."),
		banned:      desc("banned_peers_total", "Peer addresses dropped and refused for sending data that failed verification."),
		unrequested: desc("unrequested_blocks_total", "Blocks received that were not, or no longer, requested from their sender, and were dropped."),
		refused:     desc("refused_connections_total", "Peer connections closed at accept: from outside --allow-from, from a banned address, or over a limit."),
		state:       desc("state", "1 for the run's current state, 0 for the others.", "state"),
		received: desc("received_bytes_total", "Payload bytes received in this run by where their peer is: from=rack (same rack), "+
			"datacenter (same datacenter, another rack or none), remote (another datacenter, or a peer the tracker gave no place), "+
			"unplaced (this host's own place is unknown, or the peer's: no tracker reply listed it).", "from"),
	}
}

// Describe implements prometheus.Collector.
func (c *swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.downloaded, c.uploaded, c.verified, c.size, c.downRate, c.upRate, c.peers, c.banned, c.unrequested, c.refused, c.state, c.received} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *swarmCollector) Collect(ch chan<- prometheus.Metric) {
	st, state, ok := c.snap()
	for _, s := range runStates() {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- constMetric(c.state, prometheus.GaugeValue, v, s)
	}
	if !ok {
		return
	}
	ch <- constMetric(c.downloaded, prometheus.CounterValue, float64(st.Downloaded))
	ch <- constMetric(c.uploaded, prometheus.CounterValue, float64(st.Uploaded))
	ch <- constMetric(c.verified, prometheus.GaugeValue, float64(st.BytesDone))
	ch <- constMetric(c.size, prometheus.GaugeValue, float64(st.BytesTotal))
	ch <- constMetric(c.downRate, prometheus.GaugeValue, st.DownRate)
	ch <- constMetric(c.upRate, prometheus.GaugeValue, st.UpRate)
	ch <- constMetric(c.peers, prometheus.GaugeValue, float64(st.Peers))
	ch <- constMetric(c.banned, prometheus.CounterValue, float64(st.Banned))
	ch <- constMetric(c.unrequested, prometheus.CounterValue, float64(st.Unrequested))
	ch <- constMetric(c.refused, prometheus.CounterValue, float64(st.Refused))
	r := st.Received
	for _, v := range []struct {
		from string
		n    int64
	}{{"rack", r.SameRack}, {"datacenter", r.SameDatacenter}, {"remote", r.Remote}, {"unplaced", r.Unplaced}} {
		ch <- constMetric(c.received, prometheus.CounterValue, float64(v.n), v.from)
	}
}

// constMetric returns a metric of d, or an invalid metric that makes the
// scrape report the error.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
