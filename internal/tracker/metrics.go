package tracker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/murder-deploy/murder/internal/metrics"
)

// serverMetrics are a Server's Prometheus metrics, in a registry of its
// own. docs/metrics.md describes them.
type serverMetrics struct {
	handler   http.Handler
	announces *prometheus.CounterVec // by event and result
	// byEvent holds announces' counters, resolved once: [event][ok].
	byEvent   [4][2]prometheus.Counter
	scrapes   *prometheus.CounterVec // by result
	malformed *prometheus.CounterVec // by endpoint
	latency   prometheus.Histogram
	// storeErrors counts failed store operations by operation; storeUp is
	// 1 while the store's last operation succeeded.
	storeErrors *prometheus.CounterVec
	storeUp     prometheus.Gauge
	// refused counts refusals by reason, resolved once: refusedTorrents
	// and so on.
	refused [4]prometheus.Counter
}

// Rows of serverMetrics.refused, and their reason labels.
const (
	refusedTorrents = iota
	refusedPeers
	refusedOwner
	refusedAddress
)

var refusedReasons = [...]string{"torrents", "peers", "owner", "address"}

// Label values of the tracker's metrics.
const (
	resultOK      = "ok"
	resultFailure = "failure"
)

func newServerMetrics(s *Server) (*serverMetrics, error) {
	m := &serverMetrics{
		announces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "murder_tracker_announces_total",
			Help: "Announces read, by event (started, completed, stopped, none) and result (ok, or failure when refused).",
		}, []string{"event", "result"}),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "murder_tracker_scrapes_total",
			Help: "Scrapes read, by result (ok, or failure when refused).",
		}, []string{"result"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "murder_tracker_malformed_requests_total",
			Help: "Announces and scrapes refused because their query could not be read, by endpoint.",
		}, []string{"endpoint"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "murder_tracker_announce_duration_seconds",
			Help:    "Time to handle an announce, from reading its query to writing the reply.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 9), // 50 µs to 3.3 s
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "murder_tracker_store_errors_total",
			Help: "Store operations that failed (Redis down, slow or full), by operation (announce, scrape); each failed announce got a failure reason.",
		}, []string{"op"}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "murder_tracker_store_up",
			Help: "1 when the store's last operation succeeded, 0 when it failed.",
		}),
	}
	m.storeUp.Set(1)
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "murder_tracker_refused_total",
		Help: "Announces and connections refused by the tracker's limits, by reason: torrents (a new torrent past --max-torrents), peers (a new peer past --max-peers-per-torrent), owner (an announce changing a peer listed under another key or address), address (a source outside --allow-from).",
	}, []string{"reason"})
	for i, r := range refusedReasons {
		m.refused[i] = refused.WithLabelValues(r)
	}
	// Every series exists from the start, so rates work from the first
	// scrape.
	for _, ev := range []string{EventNone, EventStarted, EventCompleted, EventStopped} {
		label := ev
		if ev == EventNone {
			label = "none"
		}
		i := eventIndex(ev)
		m.byEvent[i][0] = m.announces.WithLabelValues(label, resultFailure)
		m.byEvent[i][1] = m.announces.WithLabelValues(label, resultOK)
	}
	for _, r := range []string{resultOK, resultFailure} {
		m.scrapes.WithLabelValues(r)
	}
	for _, ep := range []string{"announce", "scrape"} {
		m.malformed.WithLabelValues(ep)
		m.storeErrors.WithLabelValues(ep)
	}
	reg := metrics.NewRegistry()
	for _, c := range []prometheus.Collector{m.announces, refused, m.scrapes, m.malformed, m.latency, m.storeErrors, m.storeUp, newStoreCollector(s), newSwarmCollector(s.board)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("tracker: metrics: %w", err)
		}
	}
	m.handler = metrics.Handler(reg, s.log)
	return m, nil
}

// eventIndex maps an announce's event to its row of byEvent.
func eventIndex(event string) int {
	switch event {
	case EventStarted:
		return 1
	case EventCompleted:
		return 2
	case EventStopped:
		return 3
	}
	return 0
}

// announced counts one announce that was read.
func (m *serverMetrics) announced(event string, ok bool, start time.Time) {
	i := 0
	if ok {
		i = 1
	}
	m.byEvent[eventIndex(event)][i].Inc()
	m.latency.Observe(time.Since(start).Seconds())
}

// stored records the outcome of a store operation.
func (m *serverMetrics) stored(op string, err error) {
	if err != nil {
		m.storeErrors.WithLabelValues(op).Inc()
		m.storeUp.Set(0)
		return
	}
	m.storeUp.Set(1)
}

func result(ok bool) string {
	if ok {
		return resultOK
	}
	return resultFailure
}

// counter is a Store that can count what it holds without copying it, as
// MemStore does.
type counter interface{ Counts() Counts }

// storeCollector reports the store's counts at scrape time.
type storeCollector struct {
	s                        *Server
	torrents, peers, seeders *prometheus.Desc
}

func newStoreCollector(s *Server) *storeCollector {
	return &storeCollector{
		s: s,
		torrents: prometheus.NewDesc("murder_tracker_torrents",
			"Torrents the tracker knows: those with peers, and those kept for their count of completed downloads.", nil, nil),
		peers: prometheus.NewDesc("murder_tracker_peers",
			"Peers of all torrents, seeders included.", nil, nil),
		seeders: prometheus.NewDesc("murder_tracker_seeders",
			"Peers that have the whole torrent.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.torrents
	ch <- c.peers
	ch <- c.seeders
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	var n Counts
	if sc, ok := c.s.store.(counter); ok {
		n = sc.Counts()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		all, err := c.s.store.Scrape(ctx, nil)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.torrents, fmt.Errorf("tracker: store: %w", err))
			return
		}
		n.Torrents = len(all)
		for _, st := range all {
			n.Peers += st.Complete + st.Incomplete
			n.Seeders += st.Complete
		}
	}
	ch <- gauge(c.torrents, n.Torrents)
	ch <- gauge(c.peers, n.Peers)
	ch <- gauge(c.seeders, n.Seeders)
}

// gauge returns a gauge without labels of value v.
func gauge(d *prometheus.Desc, v int) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, float64(v))
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// swarmCollector reports each live swarm of the board at scrape time:
// as many series as torrents with peers announcing (at most
// maxBoardSwarms).
type swarmCollector struct {
	b                                 *board
	peers, progress, rate, done, secs *prometheus.Desc
}

func newSwarmCollector(b *board) *swarmCollector {
	labels := []string{"info_hash", "name"}
	return &swarmCollector{
		b: b,
		peers: prometheus.NewDesc("murder_tracker_swarm_peers",
			"Peers of a torrent that announce to this tracker, by state: seeding or downloading.", append(labels, "state"), nil),
		progress: prometheus.NewDesc("murder_tracker_swarm_progress_ratio",
			"Mean share of the torrent its peers have, 0 to 1.", labels, nil),
		rate: prometheus.NewDesc("murder_tracker_swarm_download_rate_bytes_per_second",
			"Sum of the peers' download rates over their last two announces.", labels, nil),
		done: prometheus.NewDesc("murder_tracker_swarm_deploy_hosts_done",
			"Peers that completed during the torrent's current or last deploy.", labels, nil),
		secs: prometheus.NewDesc("murder_tracker_swarm_deploy_seconds",
			"Duration of the torrent's current deploy so far, or of its last one.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peers, c.progress, c.rate, c.done, c.secs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *swarmCollector) Collect(ch chan<- prometheus.Metric) {
	swarms, _ := c.b.list(time.Now())
	for _, s := range swarms {
		if s.Seeders+s.Leechers == 0 {
			continue // not live: only stopped peers left
		}
		l := []string{s.InfoHash, s.Name}
		ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(s.Seeders), s.InfoHash, s.Name, "seeding")
		ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(s.Leechers), s.InfoHash, s.Name, "downloading")
		ch <- prometheus.MustNewConstMetric(c.progress, prometheus.GaugeValue, s.Progress, l...)
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, s.DownloadRate, l...)
		if s.Deploy != nil {
			ch <- prometheus.MustNewConstMetric(c.done, prometheus.GaugeValue, float64(s.Deploy.Hosts), l...)
			ch <- prometheus.MustNewConstMetric(c.secs, prometheus.GaugeValue, s.Deploy.Seconds, l...)
		}
	}
}
