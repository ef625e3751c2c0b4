// Package swarm is murder's BitTorrent transfer engine: it listens for and
// dials peers found through the tracker, picks pieces rarest-first with
// deep request pipelines, verifies every piece before announcing it, and
// serves blocks to every interested peer. A seeder is a swarm whose
// bitfield is full; a peer becomes one when it completes.
//
// The policy is tuned for trusted datacenter networks: every interested
// peer is unchoked (no tit-for-tat), pipelines are sized from each
// connection's rate and latency, blocks go out in large corked writes and
// received pieces are hashed on all cores off the socket read loops.
//
// A swarm that starts as the seeder sends every piece once before it sends
// any piece twice: while some piece has gone to nobody, a request (from a
// peer with the fast extension) for a piece another peer already has or is
// being sent is rejected with a suggestion of a piece nobody has, leaving
// the copying to the peers; a peer asks a seed that refused a piece only
// for pieces no other peer has, for a while (see fill). It also hands the
// pieces out roughly in index order (see superWindow), so that peers can
// hash the whole file as it arrives.
package swarm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/tracker"
)

// Config configures a Swarm. The zero value works.
type Config struct {
	// ListenAddr is the TCP address to listen on; "" picks a random port
	// on all interfaces (IPv4 and IPv6).
	ListenAddr string
	// AnnounceIP is the IP sent to the tracker; "" lets the tracker use
	// the address it sees.
	AnnounceIP string
	// PeerID identifies this peer; zero means random with murder's prefix.
	PeerID [20]byte
	// MaxConns limits connections; 0 means DefaultMaxConns, or
	// DefaultSeedConns for a swarm that starts with every piece.
	MaxConns int
	// UploadRate and DownloadRate limit payload bytes per second; 0 means
	// unlimited. Uploads are paced block by block at UploadRate (pacer),
	// so a rate just below the host's link keeps the link's queue short.
	UploadRate   int64
	DownloadRate int64
	// ClientName is sent as the BEP 10 "v" field; "" means "murder".
	ClientName string
	// Logger receives connection and piece events; nil discards them.
	Logger *slog.Logger
	// Verified, when set, is called with every piece this swarm
	// downloads, from the verifiers, once the piece is verified and
	// stored: a peer unpacks or hashes the artifact as it arrives.
	// Pieces present from the start are not passed.
	Verified func(piece int)
	// Network opens the swarm's connections; nil means the OS's TCP.
	Network Network
	// HTTPClient sends the announces; nil means one over
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Clock gives the time and the timers; nil means the real clock.
	Clock Clock
	// Datacenter and Rack say where this host runs (names as
	// tracker.CheckPlaceName allows). They are sent in announces, and
	// murder's tracker takes them over its topology; "" leaves the place
	// to the tracker, whose reply gives it. Knowing its place and its
	// peers', the swarm asks a peer of another datacenter only for pieces
	// no peer of its own has (see place.go).
	Datacenter, Rack string
	// ReadBuffer and WriteBuffer are the bytes each connection buffers
	// for reading and writing; 0 means DefaultReadBuffer and
	// DefaultWriteBuffer. A write buffer smaller than a block message is
	// raised to one.
	ReadBuffer, WriteBuffer int
	// AllowFrom, when not empty, lists the only addresses the swarm talks
	// to: a connection from anywhere else is closed at accept, before a
	// byte is sent, and peers elsewhere are not dialed (see admit.go).
	AllowFrom cidr.List
	// MaxConnsPerIP limits the connections, dialed and accepted, open or
	// in their handshake, with one remote IP address; 0 means
	// DefaultMaxConnsPerIP and a negative value no limit.
	MaxConnsPerIP int
}

// Network is how a swarm listens for and dials peers.
type Network interface {
	// Listen listens on addr ("host:port"; port 0 picks one).
	Listen(addr string) (net.Listener, error)
	// Dial connects to addr; ctx bounds the attempt.
	Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
}

// tcpNetwork is the OS's TCP.
type tcpNetwork struct{}

func (tcpNetwork) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

func (tcpNetwork) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr.String())
}

// Store keeps a swarm's pieces: *storage.Storage, or in a simulation a
// record of which pieces a host has. The swarm hashes every piece it
// receives before it writes it, and reads only pieces it has.
type Store interface {
	// ReadAt reads from the torrent's byte space.
	ReadAt(p []byte, off int64) (int, error)
	// WritePiece stores piece k, whose hash was checked.
	WritePiece(k int, data []byte) error
}

// Defaults of a Config left zero.
const (
	DefaultMaxConns = 16 // bench/sim/README.md: more were slower, and cost CPU and memory
	// DefaultSeedConns is the seeder's: the first copy of each piece goes
	// to one of them, so with more connections the first copies spread
	// from more peers at once (bench/sim/README.md, step 15: 10,000 hosts
	// at 1.49x the bound instead of 1.52x).
	DefaultSeedConns   = 32
	DefaultReadBuffer  = 256 << 10
	DefaultWriteBuffer = 128 << 10
)

// Stats is a snapshot of a swarm's progress.
type Stats struct {
	BytesDone  int64 // verified bytes on disk
	BytesTotal int64
	Downloaded int64 // payload bytes received
	Uploaded   int64 // payload bytes sent
	DownRate   float64
	UpRate     float64 // bytes per second, smoothed
	Peers      int
	Banned     int // peer addresses dropped for sending bad data
	// Unrequested counts blocks received that were not, or no longer,
	// requested from their sender; they are dropped.
	Unrequested int64
	// Refused counts connections closed at accept: from outside
	// AllowFrom, from a banned address, or over a limit.
	Refused int64
	// Received splits Downloaded by where it came from: the same rack,
	// the same datacenter, another datacenter (or a peer the tracker gave
	// no place), and peers whose place or this host's is unknown.
	Received Received
}

// Received is payload bytes received, by where they came from.
type Received struct {
	SameRack, SameDatacenter, Remote, Unplaced int64
}

// Timeouts and sizes of the engine.
const (
	handshakeTimeout  = 10 * time.Second
	dialTimeout       = 5 * time.Second
	keepAliveEvery    = 60 * time.Second
	idleTimeout       = 4 * time.Minute // others send keep-alives every 2 minutes
	requestTimeout    = 20 * time.Second
	redialAfter       = 15 * time.Second // before dialing a listed peer again
	redialFirst       = 2 * time.Second  // after a failed dial, doubling per failure
	maxDialFailures   = 6
	tickEvery         = 500 * time.Millisecond
	ourReqq           = 2000 // requests we queue per peer
	defaultReqq       = 250  // assumed when a peer does not say
	maxDepth          = 1000
	maxHeadroom       = 2                      // pipeline headroom per connection at most (updateDepth); bench/sim/README.md
	maxRemoteHeadroom = 4                      // the same toward a peer in another datacenter
	minHeadroom       = 2                      // pipeline headroom per connection at least
	headroomWindow    = 250 * time.Millisecond // of download rate, as pipeline headroom
	minInFlight       = 8                      // block requests a host keeps out at least (inFlightBudget)
	inFlightWindow    = 2 * time.Millisecond   // of download rate, as block requests out
	activeBudget      = 256 << 20              // bytes of pieces in flight
	randomFirst       = 4                      // pieces picked at random before rarest-first
	rejectMemory      = 3 * time.Second
	steerMemory       = time.Second // a seed's refusal makes it be asked only for pieces no peer has
	maxSuggested      = 64
	haveDelay         = 40 * time.Millisecond // most a have waits for a write
	minHaveDelay      = time.Millisecond
	haveBatch         = 8               // pieces a have waits for at most (see flushLater)
	offerTTL          = 2 * time.Second // a suggested piece is kept for the peer
	endgameDups       = 2               // duplicate block requests per connection in endgame
	notSentLowat      = 64 << 10        // unsent bytes a socket holds
)

// Swarm transfers one torrent. Create it with New and start it with Run.
type Swarm struct {
	cfg       Config
	log       *slog.Logger
	mi        *metainfo.MetaInfo
	info      *metainfo.Info
	st        Store
	clock     Clock
	net       Network
	infoHash  [20]byte
	peerID    [20]byte
	numPieces int
	total     int64
	maxActive int
	// superSeed is set for a swarm that starts as the seeder: until every
	// piece went out once, it steers peers to pieces nobody has.
	superSeed bool

	pace      *pacer // nil without an upload rate
	downLimit *rate.Limiter
	verifyCh  chan verifyJob
	bufPool   sync.Pool

	downloaded  atomic.Int64
	uploaded    atomic.Int64
	received    [nearKinds]atomic.Int64 // by nearness
	unrequested atomic.Int64
	refused     atomic.Int64

	lnMu sync.Mutex
	ln   net.Listener

	complete chan struct{}
	// announced is closed after the first announce a tracker answered.
	announced chan struct{}
	wake      chan struct{} // AddPeer and completion notify Run

	// mu guards the fields below, the fields of every conn marked so and
	// every piece. The message handlers (handle, onPiece, onRequest), the
	// picker (fill, pickNew, release, releaseAll, resetPiece), the
	// super-seeding helpers, tick, register, unregister, pieceDone and
	// ban run with it held; none of them blocks while holding it:
	// messages are queued (conn.send) and written by each connection's
	// writeLoop, and a completed piece goes to verifyCh, which has room
	// for every piece in flight (maxActive, or every piece of a smaller
	// torrent).
	mu          sync.Mutex
	have        *storage.Bitfield
	bytesDone   int64
	avail       []int32       // per piece, from peers that are not seeds
	seeds       int           // connected peers with every piece
	localAvail  []int32       // avail of local peers only (place.go)
	localSeeds  int           // seeds among local peers
	cfgPlace    tracker.Place // Config's place
	place       tracker.Place // this host's place: Config's, else the tracker's
	placeOf     map[netip.Addr]tracker.Place
	shareDCs    string            // the datacenters owned is for, joined; "" when none (place.go)
	owned       *storage.Bitfield // pieces this host's datacenter owns among shareDCs
	pieces      []*piece          // by index: the pieces being downloaded, else nil
	active      []*piece          // same pieces, in start order
	want        *storage.Bitfield // pieces neither verified nor in progress
	conns       map[*conn]struct{}
	joins       uint64 // connections register took in
	pending     []netip.AddrPort
	deferred    []netip.AddrPort // listed peers not dialed for want of room; pending again when a connection ends
	dialing     map[netip.AddrPort]bool
	dials       map[netip.AddrPort]dialState
	self        map[netip.AddrPort]bool
	bannedAddrs map[netip.Addr]bool
	nbanned     int
	perIP       map[netip.Addr]int // connections with each address, handshaking or open
	halfOpen    int                // accepted connections in their handshake
	rng         *mrand.Rand
	downRate    float64
	peakDown    float64 // the highest downRate so far
	upRate      float64
	sentTo      []int32 // super-seeding: peers each piece went to
	assignedTo  []int32 // super-seeding: connections being or having been sent each piece
	unsent      int     // pieces not sent to anyone yet
	front       int     // super-seeding: no piece below it is unsent
	offers      []offer // super-seeding: the last suggestion of each piece
	earlyDups   int     // pieces sent twice while others were unsent
	fatal       error
	completedAt time.Time
	lastClear   time.Time
	closing     bool
	flushArmed  bool          // flushLater's timer is set
	lastPiece   time.Time     // when the last piece was verified
	pieceGap    time.Duration // between verified pieces, smoothed
	inFlight    int           // block requests outstanding on every connection
}

// offer is a piece the seeder suggested to c at a time.
type offer struct {
	c  *conn
	at time.Time
}

type verifyJob struct {
	p       *piece
	buf     []byte
	suspect bool // earlier attempts failed: compare blocks
}

// New prepares a swarm for mi with its storage and the pieces already
// verified (have, which New takes over). A full bitfield makes a seeder.
func New(cfg Config, mi *metainfo.MetaInfo, st Store, have *storage.Bitfield) (*Swarm, error) {
	info := &mi.Info
	n := info.NumPieces()
	if have == nil {
		have = storage.NewBitfield(n)
	}
	if have.Len() != n {
		return nil, fmt.Errorf("swarm: bitfield of %d pieces for a torrent of %d", have.Len(), n)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
		if have.Full() {
			cfg.MaxConns = DefaultSeedConns
		}
	}
	if cfg.ClientName == "" {
		cfg.ClientName = "murder"
	}
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.WriteBuffer <= 0 {
		cfg.WriteBuffer = DefaultWriteBuffer
	}
	cfg.ReadBuffer = max(cfg.ReadBuffer, 64)
	cfg.WriteBuffer = max(cfg.WriteBuffer, peerwire.PieceHeaderLen+peerwire.BlockSize)
	clock := cfg.Clock
	if clock == nil {
		clock = realClock{}
	}
	network := cfg.Network
	if network == nil {
		network = tcpNetwork{}
	}
	s := &Swarm{
		cfg:         cfg,
		log:         log,
		mi:          mi,
		info:        info,
		st:          st,
		clock:       clock,
		net:         network,
		infoHash:    mi.InfoHash(),
		peerID:      cfg.PeerID,
		numPieces:   n,
		total:       info.TotalLength(),
		have:        have,
		avail:       make([]int32, n),
		localAvail:  make([]int32, n),
		placeOf:     make(map[netip.Addr]tracker.Place),
		cfgPlace:    tracker.Place{Datacenter: cfg.Datacenter, Rack: cfg.Rack},
		pieces:      make([]*piece, n),
		want:        storage.NewBitfield(n),
		conns:       make(map[*conn]struct{}),
		dialing:     make(map[netip.AddrPort]bool),
		dials:       make(map[netip.AddrPort]dialState),
		self:        make(map[netip.AddrPort]bool),
		bannedAddrs: make(map[netip.Addr]bool),
		perIP:       make(map[netip.Addr]int),
		complete:    make(chan struct{}),
		announced:   make(chan struct{}),
		wake:        make(chan struct{}, 1),
		pace:        newPacer(clock, cfg.UploadRate),
		downLimit:   newLimiter(cfg.DownloadRate),
	}
	s.place = s.cfgPlace
	if s.peerID == ([20]byte{}) {
		copy(s.peerID[:], "-MU0100-")
		if _, err := rand.Read(s.peerID[8:]); err != nil {
			return nil, fmt.Errorf("swarm: peer id: %w", err)
		}
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("swarm: seed: %w", err)
	}
	s.rng = mrand.New(mrand.NewChaCha8(seed))
	s.maxActive = max(8, int(activeBudget/max(info.PieceLength, 1)))
	s.verifyCh = make(chan verifyJob, min(s.maxActive, n)+1)
	pl := int(info.PieceLength)
	s.bufPool.New = func() any { b := make([]byte, pl); return &b }
	for k := range n {
		if have.Has(k) {
			s.bytesDone += info.PieceSize(k)
		} else {
			s.want.Set(k)
		}
	}
	if have.Full() {
		close(s.complete)
		s.superSeed = n > 1
		s.sentTo = make([]int32, n)
		s.assignedTo = make([]int32, n)
		s.offers = make([]offer, n)
		s.unsent = n
	}
	return s, nil
}

func newLimiter(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), int(max(bps, 4*peerwire.MaxRequest)))
}

// Listen opens the listening socket; Run calls it when it was not called.
func (s *Swarm) Listen() error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln != nil {
		return nil
	}
	addr := s.cfg.ListenAddr
	if addr == "" {
		addr = ":0"
	}
	ln, err := s.net.Listen(addr)
	if err != nil {
		return fmt.Errorf("swarm: listen: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr returns the listening address, or nil before Listen or Run.
func (s *Swarm) Addr() net.Addr {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

func (s *Swarm) listenPort() int {
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Complete returns a channel closed once every piece is verified on disk.
func (s *Swarm) Complete() <-chan struct{} { return s.complete }

// PeerID returns the swarm's peer id.
func (s *Swarm) PeerID() [20]byte { return s.peerID }

// AddPeer dials a peer directly, in addition to those from the tracker.
// Peers added before Run are dialed when it starts.
func (s *Swarm) AddPeer(addr netip.AddrPort) {
	s.mu.Lock()
	s.pending = append(s.pending, addr)
	s.mu.Unlock()
	s.poke()
}

func (s *Swarm) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the swarm's counters and rates.
func (s *Swarm) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		BytesDone:   s.bytesDone,
		BytesTotal:  s.total,
		Downloaded:  s.downloaded.Load(),
		Uploaded:    s.uploaded.Load(),
		DownRate:    s.downRate,
		UpRate:      s.upRate,
		Peers:       len(s.conns),
		Banned:      s.nbanned,
		Unrequested: s.unrequested.Load(),
		Refused:     s.refused.Load(),
		Received: Received{
			SameRack:       s.received[nearRack].Load(),
			SameDatacenter: s.received[nearDatacenter].Load(),
			Remote:         s.received[nearRemote].Load(),
			Unplaced:       s.received[nearUnknown].Load(),
		},
	}
}

// Run listens, announces to the torrent's trackers, connects to peers and
// transfers until ctx is cancelled; then it announces "stopped", closes
// every connection and returns nil. It returns an error when listening
// fails or the storage cannot be written.
func (s *Swarm) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	fail := func(err error) {
		s.mu.Lock()
		if s.fatal == nil {
			s.fatal = err
		}
		s.mu.Unlock()
		cancel(err)
	}
	// More verifiers than cores, so a write stalled on the disk does not
	// keep the other cores from hashing.
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() { s.verifier(ctx, fail) })
	}
	wg.Go(func() { s.acceptLoop(ctx, &wg) })
	var annWG sync.WaitGroup
	annWG.Go(func() { s.announceLoop(ctx) })

	ticker := s.clock.NewTimer(tickEvery)
	defer ticker.Stop()
	last := s.clock.Now()
	var lastDown, lastUp int64
	for {
		s.dialPending(ctx, &wg)
		select {
		case <-ctx.Done():
			s.shutdown()
			annWG.Wait()
			wg.Wait()
			s.mu.Lock()
			err := s.fatal
			s.mu.Unlock()
			return err
		case <-s.wake:
		case now := <-ticker.C():
			ticker.Reset(tickEvery)
			d, u := s.downloaded.Load(), s.uploaded.Load()
			dt := now.Sub(last).Seconds()
			s.tick(now, float64(d-lastDown)/dt, float64(u-lastUp)/dt)
			last, lastDown, lastUp = now, d, u
		}
	}
}

func (s *Swarm) shutdown() {
	s.lnMu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.lnMu.Unlock()
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
}

func (s *Swarm) acceptLoop(ctx context.Context, wg *sync.WaitGroup) {
	s.lnMu.Lock()
	ln := s.ln
	s.lnMu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accept", "err", err)
			t := s.clock.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C():
			}
			t.Stop()
			continue
		}
		ip, ok := s.admit(nc)
		if !ok {
			s.refused.Add(1)
			nc.Close()
			continue
		}
		wg.Go(func() { s.serveConn(ctx, nc, ip, false) })
	}
}

// dialState is what dialPending remembers of an address.
type dialState struct {
	notBefore time.Time // no new dial before this
	failures  int       // failed dials in a row
}

// dialPending dials peers queued by AddPeer or the tracker. A failed dial
// is tried again after 2 s, then 4 s, 8 s... up to maxDialFailures times,
// without waiting for the tracker to list the peer again: a peer that
// announced last knows everybody while nobody knows it yet, and if its
// dials fail it would otherwise stay cut off until its next announce.
func (s *Swarm) dialPending(ctx context.Context, wg *sync.WaitGroup) {
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	var dial []netip.AddrPort
	now := s.clock.Now()
	for _, a := range pending {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.IsValid() || s.closing || s.dialing[a] || s.self[a] || s.connectedTo(a) ||
			now.Before(s.dials[a].notBefore) || !s.mayDialLocked(a.Addr()) {
			continue
		}
		if len(s.conns)+len(s.dialing) >= s.cfg.MaxConns || !s.roomForLocked(s.nearLocked(a.Addr()), false) {
			// Kept for when a connection ends: a gateway whose remote
			// share was full for a moment would otherwise not dial the
			// seeder until its next announce.
			if len(s.deferred) < 4*s.cfg.MaxConns && !slices.Contains(s.deferred, a) {
				s.deferred = append(s.deferred, a)
			}
			continue
		}
		s.perIP[a.Addr()]++
		s.dialing[a] = true
		st := s.dials[a]
		st.notBefore = now.Add(redialAfter)
		s.dials[a] = st
		dial = append(dial, a)
	}
	s.mu.Unlock()
	for _, a := range dial {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			nc, err := s.net.Dial(dctx, a)
			cancel()
			s.mu.Lock()
			if err != nil {
				delete(s.dialing, a)
			}
			st := s.dials[a]
			if err != nil {
				st.failures++
				if st.failures <= maxDialFailures && ctx.Err() == nil {
					wait := redialFirst << (st.failures - 1)
					st.notBefore = s.clock.Now().Add(wait)
					s.clock.AfterFunc(wait, func() { s.AddPeer(a) })
				}
			} else {
				st.failures = 0
			}
			s.dials[a] = st
			if err != nil {
				s.dropIPLocked(a.Addr())
			}
			s.mu.Unlock()
			if err != nil {
				s.log.Debug("dial", "peer", a, "err", err, "failures", st.failures)
				return
			}
			// a stays in dialing, holding its place among the
			// connections, until register takes it in.
			s.serveConn(ctx, nc, a.Addr(), true)
			s.mu.Lock()
			delete(s.dialing, a)
			s.mu.Unlock()
		})
	}
}

func (s *Swarm) connectedTo(a netip.AddrPort) bool {
	for c := range s.conns {
		if c.addr == a || c.listen == a {
			return true
		}
	}
	return false
}

// updateRates smooths the rates measured over the last tick into the
// swarm's.
func (s *Swarm) updateRates(down, up float64) {
	s.downRate = 0.5*s.downRate + 0.5*down
	s.peakDown = max(s.peakDown, s.downRate)
	s.upRate = 0.5*s.upRate + 0.5*up
}

// tick runs the periodic work: rates, pipeline depths, request timeouts,
// idle connections.
func (s *Swarm) tick(now time.Time, down, up float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateRates(down, up)
	clearRejected := now.Sub(s.lastClear) > rejectMemory
	if clearRejected {
		s.lastClear = now
	}
	for c := range s.conns {
		if clearRejected {
			clear(c.rejected)
		}
		got := c.gotBytes
		c.gotBytes = 0
		c.rate = 0.5*c.rate + 0.5*float64(got)/tickEvery.Seconds()
		c.updateDepth()
		if now.Sub(time.Unix(0, c.lastRecv.Load())) > idleTimeout {
			s.log.Debug("idle peer", "peer", c.addr)
			c.nc.Close()
			continue
		}
		if s.have.Full() && c.seed {
			// Two seeds have nothing to exchange.
			c.nc.Close()
			continue
		}
		if c.claim != nil && now.Sub(c.claimAt) > requestTimeout {
			// Stopped in the middle of a block, requested or not: only
			// closing the connection frees the block for other peers.
			s.log.Debug("stalled in a block", "peer", c.addr, "piece", c.claim.index)
			c.nc.Close()
			continue
		}
		if len(c.reqs) > 0 && now.Sub(c.lastBlock) > requestTimeout {
			if c.claim != nil {
				// Stopped in the middle of a block: only closing the
				// connection frees the block for other peers.
				s.log.Debug("stalled in a block", "peer", c.addr, "piece", c.claim.index)
				c.nc.Close()
				continue
			}
			s.log.Debug("request timeout", "peer", c.addr, "outstanding", len(c.reqs))
			c.snubbed = true
			c.updateDepth()
			s.releaseAll(c, true)
			c.lastBlock = now
		}
	}
	if !s.have.Full() {
		// Snubbed peers last, so blocks they let time out go elsewhere.
		for _, snubbed := range []bool{false, true} {
			for c := range s.conns {
				if c.snubbed == snubbed {
					s.updateInterest(c)
					s.fill(c)
				}
			}
		}
	}
}

// Announced is closed once a tracker has answered an announce.
func (s *Swarm) Announced() <-chan struct{} { return s.announced }
