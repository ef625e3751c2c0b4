package tracker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/metrics"
)

// Defaults of a Server whose Config leaves them zero.
const (
	DefaultListen     = ":8998"
	DefaultNumWant    = 50
	DefaultMaxNumWant = 500
	// DefaultMaxScrape bounds the info hashes of one scrape request.
	DefaultMaxScrape = 256
)

// Config configures a Server. The zero value serves an open tracker on
// DefaultListen with Murder's 15 s interval.
type Config struct {
	// Listen is the address Run listens on; "" means DefaultListen.
	Listen string
	// Interval is the announce interval sent to peers; 0 means
	// DefaultInterval. Peers that miss two of their intervals are dropped
	// (see Server).
	Interval time.Duration
	// MinInterval is the "min interval" sent to peers; 0 means a third of
	// Interval.
	MinInterval time.Duration
	// DefaultNumWant is how many peers an announce without numwant gets;
	// 0 means DefaultNumWant.
	DefaultNumWant int
	// MaxNumWant caps numwant; 0 means DefaultMaxNumWant.
	MaxNumWant int
	// IgnoreIPParam makes the server always use the connection's source
	// address and ignore the announce's ip parameter.
	IgnoreIPParam bool
	// TrustIPFrom lists the sources whose announces may name their address
	// with the ip parameter; empty means any source. Even then only a
	// unicast address is taken (see usableIPParam); otherwise the
	// connection's source address is used.
	TrustIPFrom cidr.List
	// AllowFrom, when not empty, lists the only sources the tracker
	// serves: connections from elsewhere are closed as they are accepted.
	AllowFrom cidr.List
	// FullScrape lets a scrape without info_hash list every torrent; off,
	// such a scrape gets a failure reason.
	FullScrape bool
	// MaxTorrents and MaxPeers cap the torrents and the peers of one
	// torrent of the default store (see MemStoreConfig); a Store given
	// here has caps of its own.
	MaxTorrents, MaxPeers int
	// AllowDir, when set, restricts the tracker to the torrents whose
	// .torrent files lie in this directory, and serves those files at
	// /torrents/NAME. The directory is re-read when it changes.
	AllowDir string
	// AllowPoll is how often AllowDir is checked for changes; 0 means 2 s.
	AllowPoll time.Duration
	// Topology, when set, is the path of a topology file (see
	// ParseTopology) that gives the place of peers that announce none;
	// Server.ReloadTopology re-reads it.
	Topology string
	// Store keeps the swarms; nil means a MemStore whose peers live two
	// intervals (or two of the longer gaps they are seen to keep), swept by
	// Serve.
	Store Store
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Server is murder's HTTP tracker. It serves /announce (BEP 3, 23, 7),
// /scrape (BEP 48), its Prometheus metrics at /metrics, a live page of its
// swarms at / with the JSON API behind it at /api/swarms (see
// docs/status.md) and, with an allow directory, /torrents/NAME.
//
// A peer is dropped when it misses two of its announce intervals. For a
// peer that re-announces as often as Config.Interval asks, that is two
// intervals after its last announce. Some clients re-announce less often
// than asked (libtorrent waits at least 300 s whatever the interval); the
// default store learns the gap at which each peer actually re-announces and
// keeps it for two such gaps, and assumes 300 s from the first announce for
// the peer ids of libtorrent and the clients built on it. MemStore has the
// details.
type Server struct {
	cfg   Config
	store Store
	mem   *MemStore // the default store, swept by Serve; nil otherwise
	allow *allowList
	board *board // what the live page and /api show
	topo  atomic.Pointer[Topology]
	log   *slog.Logger
	stats *serverMetrics

	// headerTimeout bounds how long a client may take to send its
	// request headers; tests shorten it.
	headerTimeout time.Duration

	bufs  sync.Pool // *[]byte reply buffers
	peers sync.Pool // *[]Peer sample buffers
}

// NewServer returns a Server for cfg. It fails when AllowDir cannot be read.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = max(cfg.Interval/3, time.Second)
	}
	if cfg.MaxNumWant <= 0 {
		cfg.MaxNumWant = DefaultMaxNumWant
	}
	if cfg.DefaultNumWant <= 0 {
		cfg.DefaultNumWant = DefaultNumWant
	}
	cfg.DefaultNumWant = min(cfg.DefaultNumWant, cfg.MaxNumWant)
	if cfg.AllowPoll <= 0 {
		cfg.AllowPoll = 2 * time.Second
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, headerTimeout: 5 * time.Second, board: newBoard(2 * cfg.Interval)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.store == nil {
		s.mem = NewMemStore(MemStoreConfig{PeerTTL: 2 * cfg.Interval, MaxTorrents: cfg.MaxTorrents, MaxPeers: cfg.MaxPeers})
		s.store = s.mem
	}
	if cfg.Topology != "" {
		t, err := LoadTopology(cfg.Topology)
		if err != nil {
			return nil, err
		}
		s.topo.Store(t)
	}
	if cfg.AllowDir != "" {
		s.allow = &allowList{dir: cfg.AllowDir, log: s.log}
		if err := s.allow.load(); err != nil {
			return nil, err
		}
	}
	var err error
	if s.stats, err = newServerMetrics(s); err != nil {
		return nil, err
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	s.peers.New = func() any { p := make([]Peer, 0, cfg.DefaultNumWant); return &p }
	return s, nil
}

// ReloadTopology re-reads Config.Topology. A file that cannot be read or
// parsed is logged and returned, and the topology in use is kept.
func (s *Server) ReloadTopology() error {
	if s.cfg.Topology == "" {
		return nil
	}
	t, err := LoadTopology(s.cfg.Topology)
	if err != nil {
		s.log.Error("topology not reloaded, keeping the one in use", "err", err)
		return err
	}
	s.topo.Store(t)
	s.log.Info("topology reloaded", "file", s.cfg.Topology, "ranges", t.Ranges())
	return nil
}

// Run listens on Config.Listen and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (for up to 5 s) and returns nil.
// It closes ln. With Config.AllowFrom it closes connections from elsewhere
// as it accepts them.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.cfg.AllowFrom.Empty() {
		ln = &rangeListener{Listener: ln, ranges: s.cfg.AllowFrom, refused: func(a net.Addr) {
			s.stats.refused[refusedAddress].Inc()
			s.log.Debug("connection refused: not in --allow-from", "remote", a.String())
		}}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if s.mem != nil {
		wg.Go(func() { s.mem.Run(ctx) })
	}
	if s.allow != nil {
		wg.Go(func() { s.allow.run(ctx, s.cfg.AllowPoll) })
	}
	wg.Go(func() {
		t := time.NewTicker(max(s.cfg.Interval/4, 250*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				s.board.sweep(now)
			}
		}
	})
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.headerTimeout,
		ReadTimeout:       2 * s.headerTimeout,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       max(2*s.cfg.Interval, 30*time.Second),
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	})
	s.log.Info("tracker listening", "addr", ln.Addr().String(), "interval", s.cfg.Interval,
		"allow_dir", s.cfg.AllowDir, "ignore_ip_param", s.cfg.IgnoreIPParam, "allow_from", s.cfg.AllowFrom.String(),
		"trust_ip_from", s.cfg.TrustIPFrom.String(), "full_scrape", s.cfg.FullScrape)
	err := hs.Serve(ln)
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		s.log.Info("tracker stopped")
		return nil
	}
	return fmt.Errorf("tracker: serve: %w", err)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/announce":
		s.announce(w, r)
	case p == "/scrape":
		s.scrape(w, r)
	case p == metrics.Path:
		s.stats.handler.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/torrents/"):
		s.torrent(w, r, strings.TrimPrefix(p, "/torrents/"))
	case p == "/api/swarms":
		s.apiSwarms(w, r)
	case strings.HasPrefix(p, "/api/swarms/"):
		s.apiSwarm(w, r, strings.TrimPrefix(p, "/api/swarms/"))
	case p == "/" || strings.HasPrefix(p, "/ui/"):
		s.page(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, err := parseAnnounceQuery(r.URL.RawQuery)
	if err != nil {
		s.stats.malformed.WithLabelValues("announce").Inc()
		s.fail(w, r, err.Error())
		return
	}
	ok := false
	defer func() { s.stats.announced(q.Event, ok, start) }()
	if s.allow != nil && !s.allow.has(q.InfoHash) {
		s.fail(w, r, "torrent is not tracked here")
		return
	}
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		s.fail(w, r, "cannot tell the peer's address")
		return
	}
	if !s.cfg.AllowFrom.Allows(src.Addr()) {
		s.stats.refused[refusedAddress].Inc()
		s.fail(w, r, "address not allowed")
		return
	}
	ip := s.peerIP(src.Addr(), q.IP)
	numWant := q.NumWant
	if numWant < 0 {
		numWant = s.cfg.DefaultNumWant
	}
	numWant = min(numWant, s.cfg.MaxNumWant)
	place := q.Place
	if !place.Known() {
		place = s.topo.Load().Place(ip)
	}
	pa := PeerAnnounce{
		InfoHash: q.InfoHash,
		Peer:     Peer{ID: q.PeerID, Addr: netip.AddrPortFrom(ip, uint16(q.Port)), Place: place},
		Seeder:   q.Left == 0,
		Event:    q.Event,
		NumWant:  numWant,
		Owner:    ownerOf(q.hasKey, q.keySum, src.Addr()),
	}
	pp := s.peers.Get().(*[]Peer)
	defer s.peers.Put(pp)
	peers, st, err := s.store.Announce(r.Context(), &pa, (*pp)[:0])
	if cap(peers) <= s.cfg.MaxNumWant {
		*pp = peers[:0]
	}
	if err != nil {
		if reason, i := refusal(err); reason != "" {
			s.stats.stored("announce", nil)
			s.stats.refused[i].Inc()
			s.fail(w, r, reason)
			return
		}
		s.stats.stored("announce", err)
		s.log.Warn("store announce failed", "err", err)
		s.fail(w, r, "tracker store unavailable, retry later")
		return
	}
	s.stats.stored("announce", nil)
	var info torrentInfo
	if s.allow != nil {
		info = s.allow.info(q.InfoHash)
	}
	s.board.record(&q.AnnounceRequest, pa.Peer.Addr, place, info, start)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("announce", "info_hash", hex.EncodeToString(q.InfoHash[:]), "peer", pa.Peer.Addr.String(),
			"event", q.Event, "left", q.Left, "returned", len(peers))
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	var self *Place
	if q.places {
		self = &place
	}
	b := appendAnnounceReply(*bp, s.cfg.Interval, s.cfg.MinInterval, st, peers, q.compact, q.noPeerID, self)
	*bp = b[:0]
	writeBencode(w, b)
	ok = true
}

// refusal returns the failure reason, and the row of the refusals metric,
// of a store's refusal; "" for other errors.
func refusal(err error) (string, int) {
	switch {
	case errors.Is(err, ErrStoreFull):
		return "tracker holds too many torrents, retry later", refusedTorrents
	case errors.Is(err, ErrSwarmFull):
		return "torrent has too many peers, retry later", refusedPeers
	case errors.Is(err, ErrNotOwner):
		return "peer id is listed by another client: announce with its key, or from its address", refusedOwner
	}
	return "", 0
}

// peerIP picks the address other peers should dial: the ip parameter when
// it is allowed (see usableIPParam), else the connection's source src.
func (s *Server) peerIP(src netip.Addr, param string) netip.Addr {
	src = src.Unmap().WithZone("")
	if param != "" && !s.cfg.IgnoreIPParam {
		if ip, err := netip.ParseAddr(param); err == nil && usableIPParam(ip, src, s.cfg.TrustIPFrom) {
			return ip.Unmap()
		}
	}
	return src
}

func (s *Server) scrape(w http.ResponseWriter, r *http.Request) {
	hashes, err := parseScrapeQuery(r.URL.RawQuery, DefaultMaxScrape)
	if err != nil {
		s.stats.malformed.WithLabelValues("scrape").Inc()
		s.fail(w, r, err.Error())
		return
	}
	ok := false
	defer func() { s.stats.scrapes.WithLabelValues(result(ok)).Inc() }()
	if !s.cfg.AllowFrom.Empty() {
		if src, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !s.cfg.AllowFrom.Allows(src.Addr()) {
			s.stats.refused[refusedAddress].Inc()
			s.fail(w, r, "address not allowed")
			return
		}
	}
	if len(hashes) == 0 && !s.cfg.FullScrape {
		s.fail(w, r, "full scrape is off on this tracker: name the torrents with info_hash")
		return
	}
	if s.allow != nil {
		if len(hashes) == 0 {
			hashes = s.allow.list()
		} else {
			hashes = slices.DeleteFunc(hashes, func(h [20]byte) bool { return !s.allow.has(h) })
			if len(hashes) == 0 {
				s.fail(w, r, "torrent is not tracked here")
				return
			}
		}
	}
	stats, err := s.store.Scrape(r.Context(), hashes)
	s.stats.stored("scrape", err)
	if err != nil {
		s.log.Warn("store scrape failed", "err", err)
		s.fail(w, r, "tracker store unavailable, retry later")
		return
	}
	for _, h := range hashes {
		if _, ok := stats[h]; !ok {
			stats[h] = ScrapeStats{}
		}
	}
	writeBencode(w, appendScrapeReply(nil, stats, s.cfg.MinInterval))
	ok = true
}

func (s *Server) torrent(w http.ResponseWriter, r *http.Request, name string) {
	if s.allow == nil {
		http.NotFound(w, r)
		return
	}
	data, file, ok := s.allow.file(name)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Content-Disposition", "attachment; filename="+strconv.Quote(file))
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// fail answers a bad request with HTTP 200 and a bencoded failure reason,
// as BitTorrent clients expect.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, reason string) {
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("announce refused", "remote", r.RemoteAddr, "reason", reason)
	}
	writeBencode(w, appendFailure(nil, reason))
}

func writeBencode(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.Write(b)
}

// appendAnnounceReply appends a bencoded announce reply. Keys are written
// in sorted order, as bencode requires. With self set (murder's peers ask
// for it with places=1) the reply also carries murder's keys, which other
// clients ignore: "place", the announcing peer's place, and "places", the
// place of each peer in the order of "peers" then "peers6" (see Place.String).
func appendAnnounceReply(dst []byte, interval, minInterval time.Duration, st ScrapeStats, peers []Peer, compact, noPeerID bool, self *Place) []byte {
	dst = append(dst, "d8:complete"...)
	dst = appendBInt(dst, int64(st.Complete))
	dst = append(dst, "10:downloaded"...)
	dst = appendBInt(dst, int64(st.Downloaded))
	dst = append(dst, "10:incomplete"...)
	dst = appendBInt(dst, int64(st.Incomplete))
	dst = append(dst, "8:interval"...)
	dst = appendBInt(dst, int64(interval/time.Second))
	dst = append(dst, "12:min interval"...)
	dst = appendBInt(dst, int64(minInterval/time.Second))
	dst = append(dst, "5:peers"...)
	if !compact {
		dst = append(dst, 'l')
		for _, p := range peers {
			dst = append(dst, "d2:ip"...)
			var ipb [64]byte
			dst = appendBString(dst, p.Addr.Addr().AppendTo(ipb[:0]))
			if !noPeerID {
				dst = append(dst, "7:peer id"...)
				dst = appendBString(dst, p.ID[:])
			}
			dst = append(dst, "4:port"...)
			dst = appendBInt(dst, int64(p.Addr.Port()))
			dst = append(dst, 'e')
		}
		dst = append(dst, 'e')
		if self != nil {
			dst = appendPlaces(dst, *self, peers, false)
		}
		return append(dst, 'e')
	}
	n4, n6 := 0, 0
	for _, p := range peers {
		if p.Addr.Addr().Is4() {
			n4++
		} else {
			n6++
		}
	}
	dst = strconv.AppendInt(dst, int64(6*n4), 10)
	dst = append(dst, ':')
	for _, p := range peers {
		if p.Addr.Addr().Is4() {
			dst = appendCompact(dst, p.Addr)
		}
	}
	if n6 > 0 {
		dst = append(dst, "6:peers6"...)
		dst = strconv.AppendInt(dst, int64(18*n6), 10)
		dst = append(dst, ':')
		for _, p := range peers {
			if !p.Addr.Addr().Is4() {
				dst = appendCompact(dst, p.Addr)
			}
		}
	}
	if self != nil {
		dst = appendPlaces(dst, *self, peers, true)
	}
	return append(dst, 'e')
}

// appendPlaces appends murder's "place" and "places" keys: self's place,
// and the places of peers in the order the reply lists them (IPv4 peers
// then IPv6 peers when compact).
func appendPlaces(dst []byte, self Place, peers []Peer, compact bool) []byte {
	dst = append(dst, "5:place"...)
	dst = appendBString(dst, self.String())
	dst = append(dst, "6:placesl"...)
	for pass := range 2 {
		for _, p := range peers {
			if !compact && pass == 0 || compact && p.Addr.Addr().Is4() == (pass == 0) {
				dst = appendBString(dst, p.Place.String())
			}
		}
	}
	return append(dst, 'e')
}

// appendScrapeReply appends a bencoded scrape reply (BEP 48) with the info
// hashes in sorted order.
func appendScrapeReply(dst []byte, stats map[[20]byte]ScrapeStats, minInterval time.Duration) []byte {
	keys := make([][20]byte, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [20]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	dst = append(dst, "d5:filesd"...)
	for _, k := range keys {
		st := stats[k]
		dst = appendBString(dst, k[:])
		dst = append(dst, "d8:complete"...)
		dst = appendBInt(dst, int64(st.Complete))
		dst = append(dst, "10:downloaded"...)
		dst = appendBInt(dst, int64(st.Downloaded))
		dst = append(dst, "10:incomplete"...)
		dst = appendBInt(dst, int64(st.Incomplete))
		dst = append(dst, 'e')
	}
	dst = append(dst, "e5:flagsd20:min_request_interval"...)
	dst = appendBInt(dst, int64(minInterval/time.Second))
	return append(dst, "ee"...)
}
