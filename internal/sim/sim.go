// Package sim runs a fleet of murder hosts in one process: each host is
// murder's real transfer engine (internal/swarm) announcing to murder's
// real tracker (internal/tracker), over an in-memory network (Network)
// that paces every link. Run inside a testing/synctest bubble, the clock
// is virtual: it advances only when every host is waiting, so a deploy to
// thousands of hosts runs in minutes of CPU time, and the CPU of the
// machine running it does not limit the result.
//
// Every received piece is hashed by the engine as on a real host; the
// hosts' stores (Store) keep only which pieces they have and serve the
// bytes from one shared copy, so memory grows with hosts times pieces,
// not hosts times the artifact.
package sim

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/swarm"
	"github.com/murder-deploy/murder/internal/tracker"
)

// Config describes a simulated deploy: one seeder and Hosts peers. The
// zero value is not useful; Hosts and Size must be set.
type Config struct {
	// Hosts is the number of peers, the seeder not counted.
	Hosts int
	// Size is the artifact's size in bytes.
	Size int64
	// PieceSize is the torrent's piece length; 0 lets murder choose
	// (metainfo.ChoosePieceLength).
	PieceSize int64
	// Link is every peer's link; SeedLink the seeder's (zero: Link).
	Link, SeedLink Link
	// Datacenters spreads the hosts over this many datacenters (0 or 1:
	// one, without WAN links); the seeder and the tracker are in the
	// first. WAN is each datacenter's link to the others, each way.
	Datacenters int
	WAN         int64
	// Unplaced hosts do not tell the tracker their datacenter, so peers
	// are chosen as if there were one.
	Unplaced bool
	// Slow hosts (a fraction of the peers, chosen by Seed) get SlowLink
	// instead of Link.
	Slow     float64
	SlowLink Link
	// Late peers (a fraction, chosen by Seed) start at a random time
	// within LateBy.
	Late   float64
	LateBy time.Duration
	// Stop peers (a fraction, chosen by Seed) stop once they have half
	// the artifact and never come back.
	Stop float64
	// MaxConns is each host's connection limit; 0 means the engine's
	// default.
	MaxConns int
	// UploadRate is each host's upload limit in payload bytes per second,
	// as murder's --max-upload-rate; 0 means none.
	UploadRate int64
	// ReadBuffer and WriteBuffer are each connection's buffers; 0 means
	// 4 KiB (blocks are read straight into their pieces) and one block
	// message, to keep thousands of hosts in memory.
	ReadBuffer, WriteBuffer int
	// Seed makes the artifact, the slow, late and stopping hosts and the
	// places of the hosts repeatable.
	Seed uint64
	// Timeout bounds the simulated deploy in virtual time; 0 means 1 h.
	Timeout time.Duration
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
}

// Result is what a simulated deploy measured. Times are virtual, from the
// moment every host was started (late hosts excepted).
type Result struct {
	Hosts    int
	Size     int64
	Pieces   int
	InfoHash [20]byte        // of the artifact, which Config.Seed makes
	Bound    time.Duration   // the Kumar-Ross lower bound, and F/WAN across datacenters
	Done     []time.Duration // when each finished peer was done, in order
	Missing  int             // peers that did not finish (stopped ones excluded)
	Stopped  int             // peers that stopped on purpose
	SeedSent float64         // bytes the seeder uploaded, in units of Size
	// AtBound is the mean fraction of the artifact the peers had once the
	// Kumar-Ross bound had passed (0 if all finished before).
	AtBound float64
	// WANIn is the bytes that entered each datacenter but the first over
	// its WAN link, WANOut what left each datacenter, in units of Size.
	WANIn, WANOut []float64
	// Announces is how many announces the tracker answered.
	Announces int64
	// ConnsPerHost is the mean number of connections a peer had when it
	// finished.
	ConnsPerHost float64
	// Reads and Writes count the Read and Write calls on all connections
	// until the last peer finished: the system calls of a real network,
	// a measure of the engine's work that the simulation does not bias.
	Reads, Writes int64
	// Virtual is the virtual time the deploy took.
	Virtual time.Duration
	// Curve samples the deploy every tenth of the bound until the last
	// peer is done.
	Curve []Sample
}

// Sample is how busy the links were over one tenth of the bound, and how
// far the peers were at its end.
type Sample struct {
	At time.Duration // the end of the interval
	// Up is the payload the uplinks of all hosts carried over the
	// interval, as a fraction of what they could carry; Down the same of
	// the peers' downlinks.
	Up, Down float64
	// Done is the mean fraction of the artifact the peers had verified.
	Done float64
}

// Quantile returns the q-quantile (0..1) of the finish times.
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Done) == 0 {
		return 0
	}
	return r.Done[min(len(r.Done)-1, int(q*float64(len(r.Done)-1)+0.5))]
}

// Bound returns the Kumar-Ross lower bound of a swarm: max(F/U_seed, F/D,
// N*F/(U_seed + sum U)), with D the slowest download rate.
func Bound(size int64, seedUp int64, ups, downs []int64) time.Duration {
	f := float64(size)
	b := f / float64(nonZero(seedUp))
	total := float64(nonZero(seedUp))
	for _, u := range ups {
		total += float64(nonZero(u))
	}
	for _, d := range downs {
		b = max(b, f/float64(nonZero(d)))
	}
	b = max(b, float64(len(ups))*f/total)
	return time.Duration(b * float64(time.Second))
}

var hostBase = netip.MustParseAddr("198.18.0.0")

// hostAddr returns the address of host i (0 is the seeder).
func hostAddr(i int) netip.Addr {
	a := hostBase.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i + 2)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Run simulates one deploy. Called inside a testing/synctest bubble it
// runs in virtual time; outside one it runs in real time.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Hosts <= 0 || cfg.Size <= 0 {
		return Result{}, errors.New("sim: hosts and size must be positive")
	}
	if cfg.Hosts > 1<<16 {
		return Result{}, fmt.Errorf("sim: %d hosts is too many (at most 65536)", cfg.Hosts)
	}
	if cfg.SeedLink == (Link{}) {
		cfg.SeedLink = cfg.Link
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Hour
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 4 << 10
	}
	if cfg.WriteBuffer <= 0 {
		cfg.WriteBuffer = peerwire.PieceHeaderLen + peerwire.BlockSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d75726465720a))
	mi, data, err := artifact(cfg.Size, cfg.PieceSize, rng)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	trk, err := tracker.NewServer(tracker.Config{Logger: log})
	if err != nil {
		return Result{}, err
	}
	var announces atomic.Int64
	network := NewNetwork(ctx)
	ndc := max(cfg.Datacenters, 1)
	var dcs []*Datacenter
	for d := range ndc {
		var wan int64
		if ndc > 1 {
			wan = cfg.WAN
		}
		dcs = append(dcs, network.AddDatacenter(fmt.Sprintf("dc%d", d+1), wan))
	}

	// Host 0 is the seeder; peers are spread over the datacenters in
	// turn.
	type host struct {
		h       *Host
		sw      *swarm.Swarm
		store   *Store
		link    Link
		late    time.Duration
		stop    bool
		peak    int
		doneAt  time.Duration
		stopped bool
	}
	hosts := make([]*host, cfg.Hosts+1)
	perm := rng.Perm(cfg.Hosts)
	nSlow, nLate, nStop := int(cfg.Slow*float64(cfg.Hosts)), int(cfg.Late*float64(cfg.Hosts)), int(cfg.Stop*float64(cfg.Hosts))
	var ups, downs []int64
	for i := range hosts {
		hs := &host{link: cfg.Link}
		if i == 0 {
			hs.link = cfg.SeedLink
		} else {
			k := perm[i-1]
			switch {
			case k < nSlow:
				hs.link = cfg.SlowLink
			case k < nSlow+nLate:
				hs.late = time.Duration(rng.Int64N(int64(max(cfg.LateBy, 1))))
			case k < nSlow+nLate+nStop:
				hs.stop = true
			}
			ups = append(ups, hs.link.Up)
			downs = append(downs, hs.link.Down)
		}
		dc := dcs[0]
		if i > 0 {
			dc = dcs[(i-1)%ndc]
		}
		if hs.h, err = network.AddHost(hostAddr(i), dc, hs.link); err != nil {
			return Result{}, err
		}
		hc := &http.Client{Transport: &trackerTransport{h: trk, from: hs.h, announces: &announces}}
		full := storage.NewBitfield(mi.Info.NumPieces())
		if i == 0 {
			full.SetAll()
		}
		hs.store = &Store{data: data}
		place := ""
		if ndc > 1 && !cfg.Unplaced {
			place = dc.Name
		}
		hs.sw, err = swarm.New(swarm.Config{
			ListenAddr:  ":0",
			MaxConns:    cfg.MaxConns,
			UploadRate:  cfg.UploadRate,
			Logger:      log.With("host", hs.h.Addr()),
			Network:     hs.h,
			Clock:       gridClock{},
			Datacenter:  place,
			HTTPClient:  hc,
			ReadBuffer:  cfg.ReadBuffer,
			WriteBuffer: cfg.WriteBuffer,
		}, mi, hs.store, full)
		if err != nil {
			return Result{}, err
		}
		hosts[i] = hs
	}

	start := time.Now()
	deadline, dcancel := context.WithTimeout(ctx, cfg.Timeout)
	defer dcancel()
	var wg, done sync.WaitGroup
	runErr := make(chan error, len(hosts))
	for i, hs := range hosts {
		hctx, hcancel := context.WithCancel(ctx)
		wg.Go(func() {
			defer hcancel()
			if i > 0 {
				// As murder deploy does, the peers start once the
				// seeder has announced.
				select {
				case <-hosts[0].sw.Announced():
				case <-hctx.Done():
					return
				}
			}
			if hs.late > 0 {
				t := time.NewTimer(hs.late)
				select {
				case <-t.C:
				case <-hctx.Done():
					return
				}
			}
			if err := hs.sw.Run(hctx); err != nil {
				runErr <- fmt.Errorf("sim: host %s: %w", hs.h.Addr(), err)
			}
		})
		if i == 0 {
			continue
		}
		done.Go(func() {
			var half <-chan struct{}
			if hs.stop {
				half = halfway(deadline, hs.sw)
			}
			select {
			case <-hs.sw.Complete():
				hs.doneAt = time.Since(start)
				hs.peak = max(hs.peak, hs.sw.Stats().Peers)
			case <-half:
				hs.stopped = true
				hcancel()
			case <-deadline.Done():
			}
		})
	}
	bound := Bound(cfg.Size, cfg.SeedLink.Up, ups, downs)
	peers := make([]peerHost, 0, cfg.Hosts)
	for _, hs := range hosts[1:] {
		peers = append(peers, peerHost{hs.h, hs.sw})
	}
	curveCh := make(chan []Sample, 1)
	go func() { curveCh <- sample(ctx, hosts[0].h, peers, bound/10) }()
	done.Wait()
	reads, writes := network.Calls()
	res := Result{Reads: reads, Writes: writes, Hosts: cfg.Hosts, Size: cfg.Size, Pieces: mi.Info.NumPieces(), InfoHash: mi.InfoHash(), Virtual: time.Since(start),
		Bound: bound}
	if ndc > 1 && cfg.WAN > 0 {
		// Each other datacenter takes in at least one copy over its WAN
		// link.
		res.Bound = max(res.Bound, time.Duration(float64(cfg.Size)/float64(cfg.WAN)*float64(time.Second)))
	}
	res.SeedSent = float64(hosts[0].sw.Stats().Uploaded) / float64(cfg.Size)
	var peaks int
	var errs []error
	for _, hs := range hosts[1:] {
		peaks += hs.peak
		switch {
		case hs.stopped:
			res.Stopped++
		case hs.doneAt == 0:
			res.Missing++
		default:
			res.Done = append(res.Done, hs.doneAt)
			if n := hs.store.Pieces(); n != res.Pieces {
				errs = append(errs, fmt.Errorf("sim: host %s finished with %d pieces written of %d", hs.h.Addr(), n, res.Pieces))
			}
		}
	}
	res.ConnsPerHost = float64(peaks) / float64(cfg.Hosts)
	for i, d := range dcs {
		if ndc == 1 {
			break
		}
		if i > 0 {
			res.WANIn = append(res.WANIn, float64(d.BytesIn())/float64(cfg.Size))
		}
		res.WANOut = append(res.WANOut, float64(d.BytesOut())/float64(cfg.Size))
	}
	res.Announces = announces.Load()
	cancel()
	res.Curve = <-curveCh
	if len(res.Curve) >= 10 {
		// How far the peers are when the bound has passed: what is
		// left then is the tail the bound does not account for.
		res.AtBound = res.Curve[9].Done
	}
	wg.Wait()
	network.Wait()
	close(runErr)
	for err := range runErr {
		errs = append(errs, err)
	}
	slices.Sort(res.Done)
	return res, errors.Join(errs...)
}

// peerHost is a peer's network host and engine, as sample reads them.
type peerHost struct {
	h  *Host
	sw *swarm.Swarm
}

// sample reads the links' byte counts and the peers' progress every
// period until ctx ends.
func sample(ctx context.Context, seeder *Host, peers []peerHost, period time.Duration) []Sample {
	if period <= 0 {
		return nil
	}
	var upCap, downCap float64
	upCap = float64(nonZero(seeder.link.Up))
	for _, p := range peers {
		upCap += float64(nonZero(p.h.link.Up))
		downCap += float64(nonZero(p.h.link.Down))
	}
	totals := func() (up, down int64) {
		up = seeder.BytesSent()
		for _, p := range peers {
			up += p.h.BytesSent()
			down += p.h.BytesReceived()
		}
		return up, down
	}
	start := time.Now()
	lastUp, lastDown := totals()
	t := time.NewTicker(period)
	defer t.Stop()
	var out []Sample
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		up, down := totals()
		var done float64
		for _, p := range peers {
			st := p.sw.Stats()
			done += float64(st.BytesDone) / float64(st.BytesTotal)
		}
		sec := period.Seconds()
		out = append(out, Sample{At: time.Since(start), Up: float64(up-lastUp) / (upCap * sec),
			Down: float64(down-lastDown) / (downCap * sec), Done: done / float64(len(peers))})
		lastUp, lastDown = up, down
		if done == float64(len(peers)) {
			return out
		}
	}
}

// halfway returns a channel closed once sw has half the artifact.
func halfway(ctx context.Context, sw *swarm.Swarm) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			st := sw.Stats()
			if 2*st.BytesDone >= st.BytesTotal {
				close(ch)
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// artifact makes size pseudo-random bytes and their torrent.
func artifact(size, pieceSize int64, rng *rand.Rand) (*metainfo.MetaInfo, []byte, error) {
	data := make([]byte, size)
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(data); j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	if pieceSize <= 0 {
		pieceSize = metainfo.ChoosePieceLength(size)
	}
	info := metainfo.Info{Name: "artifact.tgz", PieceLength: pieceSize, Length: size}
	for off := int64(0); off < size; off += pieceSize {
		sum := sha1.Sum(data[off:min(off+pieceSize, size)])
		info.Pieces = append(info.Pieces, sum[:]...)
	}
	mi, err := metainfo.New(info, []string{"http://tracker.sim:8998/announce"})
	return mi, data, err
}

// trackerTransport hands a host's announces straight to the tracker's
// handler, from the host's address, after a round trip.
type trackerTransport struct {
	h         http.Handler
	from      *Host
	announces *atomic.Int64
}

func (t *trackerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rtt := 2 * t.from.link.Latency
	if rtt > 0 {
		tm := time.NewTimer(rtt)
		select {
		case <-r.Context().Done():
			tm.Stop()
			return nil, r.Context().Err()
		case <-tm.C:
		}
	}
	r = r.Clone(r.Context())
	r.RemoteAddr = netip.AddrPortFrom(t.from.addr, 40000).String()
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	t.announces.Add(1)
	res := w.Result()
	// Detach the body from the recorder's buffer.
	body, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// Store is a simulated host's piece store: it records which pieces the
// host wrote and reads every byte from the one shared copy of the
// artifact, which the swarm reads only for pieces it has.
type Store struct {
	data []byte
	mu   sync.Mutex
	n    int
}

// ReadAt implements swarm.Store.
func (s *Store) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WritePiece implements swarm.Store.
func (s *Store) WritePiece(k int, data []byte) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}

// Pieces returns how many pieces were written.
func (s *Store) Pieces() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
