package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/swarm"
)

// ErrTimeout is the cause (see context.Cause) of a run stopped by
// PeerConfig.Timeout.
var ErrTimeout = errors.New("agent: timed out")

// DefaultTempPath is where archives download when PeerConfig.TempPath is
// empty.
const DefaultTempPath = "/tmp"

// DefaultPeerSeedTime is how long `murder peer` seeds on by default, as
// Murder did.
const DefaultPeerSeedTime = 30 * time.Second

// PeerConfig configures one `murder peer` run. Only Torrent and
// Destination are required.
type PeerConfig struct {
	// Torrent is the path of the .torrent file.
	Torrent string
	// Destination is Murder's destination path: the artifact is extracted
	// into Destination/TAG, or into Destination itself with NoTagDirectory.
	Destination string
	// NoTagDirectory places the files in Destination instead of
	// Destination/TAG.
	NoTagDirectory bool
	// UnsafePleaseDelete empties a non-empty effective destination;
	// without it the peer refuses one.
	UnsafePleaseDelete bool
	// PathIsFile places the downloaded files as they are, without
	// extracting, even when they look like an archive.
	PathIsFile bool
	// TempPath holds an archive's download (TempPath/NAME) across runs,
	// so an interrupted run resumes. Files placed as they are download
	// into a hidden directory beside the destination instead
	// (.TAG.murder-partial-INFOHASH), kept likewise until they are placed.
	// Empty means DefaultTempPath.
	TempPath string
	// AnnounceIP is the IP address sent to the tracker; empty lets the
	// tracker use the connection's source address.
	AnnounceIP string
	// ListenAddr is the peer-wire listen address; empty picks a port.
	ListenAddr string
	// Datacenter and Rack say where this host runs; they are sent to the
	// tracker, whose topology gives them when empty. Peers of the same
	// datacenter are preferred (see swarm.Config).
	Datacenter, Rack string
	// SeedTime is how long to keep seeding after the files are in place;
	// zero exits at once.
	SeedTime time.Duration
	// UploadRate and DownloadRate cap the transfer in bytes per second;
	// zero means no limit.
	UploadRate, DownloadRate int64
	// AllowFrom, when not empty, lists the only addresses peers may
	// connect from or be dialed at (see swarm.Config).
	AllowFrom cidr.List
	// MaxConnsPerIP limits the connections with one remote address; zero
	// means swarm.DefaultMaxConnsPerIP, negative no limit.
	MaxConnsPerIP int
	// Timeout bounds the whole run; zero means none. When it passes before
	// the files are in place the run fails with ErrTimeout; during the
	// seeding afterwards it only ends the seeding.
	Timeout time.Duration
	// Reporter receives progress events; nil drops them.
	Reporter Reporter
	// ProgressInterval is the time between progress events; zero means 1s.
	ProgressInterval time.Duration
	// MetricsAddr, when set, is the HOST:PORT where the run serves its
	// Prometheus metrics at /metrics (see docs/metrics.md); empty serves
	// none.
	MetricsAddr string
	// Logger receives human-readable messages; nil discards them.
	Logger *slog.Logger
	// AllowedSigners, when set, is an OpenSSH allowed_signers file: the
	// torrent must then carry a signature (SSHSIG, namespace "murder") by
	// a key it allows, checked before anything is downloaded or created
	// (see bundle.CheckSignature).
	AllowedSigners string
	// Signature is the path of the torrent's signature; empty means the
	// torrent's path with ".sig" added.
	Signature string
}

// Peer downloads the torrent's artifact (reusing pieces already verified
// by an earlier run; see PeerConfig.TempPath), checks its SHA-256 when the
// torrent carries one, places it atomically at the effective destination
// (extracting murder's archives), reports done, and seeds on for SeedTime.
// The destination is either complete or untouched when Peer returns an
// error.
func Peer(ctx context.Context, cfg PeerConfig) (err error) {
	rep := cfg.Reporter
	if rep == nil {
		rep = nopReporter{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &peerRun{cfg: cfg, rep: rep, log: log}
	defer func() {
		if err != nil {
			rep.Report(p.event(progress.EventError, err.Error()))
		}
	}()
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.Timeout, ErrTimeout)
		defer cancel()
	}
	return p.run(ctx)
}

type peerRun struct {
	cfg   PeerConfig
	rep   Reporter
	log   *slog.Logger
	mi    *metainfo.MetaInfo
	art   Artifact
	sw    *swarm.Swarm
	state string
	total int64
	done  int64 // bytes verified before the swarm exists
	// The new tree beside the destination (for files placed as they are,
	// the download itself); the job that unpacks an archive or hashes a
	// single file (nil for neither) as the pieces arrive.
	stage  *bundle.Stage
	follow *follower
	// metrics is what /metrics reports, read from other goroutines.
	metrics runMetrics
}

func (p *peerRun) event(name, msg string) progress.Event {
	ev := progress.Event{Event: name, Tag: p.art.Tag, State: p.state, BytesTotal: p.total, BytesDone: p.done, Message: msg}
	if p.sw != nil {
		st := p.sw.Stats()
		ev.BytesDone, ev.BytesTotal = st.BytesDone, st.BytesTotal
		ev.DownRate, ev.UpRate, ev.Peers = int64(st.DownRate), int64(st.UpRate), st.Peers
		ev.Downloaded, ev.Uploaded = st.Downloaded, st.Uploaded
	}
	if name == progress.EventDone {
		ev.Path = p.art.Destination
		ev.BytesDone = ev.BytesTotal
	}
	return ev
}

func (p *peerRun) setState(s string) {
	p.state = s
	p.metrics.setState(s)
	p.rep.Report(p.event(progress.EventProgress, ""))
}

func (p *peerRun) run(ctx context.Context) error {
	cfg := p.cfg
	if cfg.Torrent == "" {
		return errors.New("agent: no torrent given")
	}
	if cfg.Destination == "" {
		return errors.New("agent: no destination path given")
	}
	// The bytes checked are the bytes parsed: the file is read once.
	data, err := os.ReadFile(cfg.Torrent)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if cfg.AllowedSigners != "" {
		sigPath := cfg.Signature
		if sigPath == "" {
			sigPath = bundle.SignaturePath(cfg.Torrent)
		}
		signer, err := bundle.CheckSignature(data, sigPath, cfg.AllowedSigners)
		if err != nil {
			return fmt.Errorf("agent: refusing %s: %w", cfg.Torrent, err)
		}
		p.log.Info("signature good", "signer", signer.Principals, "key", signer.Fingerprint)
	}
	mi, err := metainfo.Parse(data)
	if err != nil {
		return fmt.Errorf("agent: %s: %w", cfg.Torrent, err)
	}
	p.mi = mi
	p.total = mi.Info.TotalLength()
	p.art = ResolveArtifact(&mi.Info, cfg.Destination, cfg.NoTagDirectory, cfg.PathIsFile)
	// The tag names the destination and appears in logs and reports:
	// murder's one tag rule applies to torrents from anywhere.
	if err := bundle.ValidateTag(p.art.Tag); err != nil {
		return fmt.Errorf("agent: the torrent's name %q does not give a valid tag: %w", mi.Info.Name, err)
	}
	// Refuse before any download; placing the tree checks again.
	if err := bundle.CheckDestination(p.art.Destination, cfg.UnsafePleaseDelete); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Destination, 0o755); err != nil {
		return fmt.Errorf("agent: destination: %w", err)
	}
	// Files placed as they are download into a resumable stage beside the
	// destination, in the layout they are placed in: each byte is written
	// once, where it stays, a run that was stopped resumes from what it
	// left there, and placing the files is a rename. An archive downloads
	// into the temp path and is unpacked into a new stage as its verified
	// front grows, so that placing it is a rename too.
	var st *storage.Storage
	var download string // where it is, for messages
	if p.art.Archive {
		temp := cfg.TempPath
		if temp == "" {
			temp = DefaultTempPath
		}
		if err := os.MkdirAll(temp, 0o755); err != nil {
			return fmt.Errorf("agent: temp path: %w", err)
		}
		unlock, err := lockDownload(temp, mi.Info.Name)
		if err != nil {
			return err
		}
		defer unlock()
		if p.stage, err = bundle.NewStage(p.art.Destination, cfg.UnsafePleaseDelete); err != nil {
			return err
		}
		defer p.stage.Abort()
		if st, err = storage.OpenTemp(&mi.Info, temp); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		download = filepath.Join(temp, mi.Info.Name)
	} else {
		if p.stage, err = bundle.ResumableStage(p.art.Destination, cfg.UnsafePleaseDelete, mi.InfoHash().String()); err != nil {
			return err
		}
		defer p.stage.Abort()
		if st, err = storage.OpenTree(&mi.Info, p.stage.Dir()); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		download = p.stage.Dir()
	}
	defer st.Close()

	if cfg.MetricsAddr != "" {
		stop, err := serveMetrics(ctx, cfg.MetricsAddr, p.log, mi, p.metrics.snapshot)
		if err != nil {
			return err
		}
		defer stop()
	}
	p.setState(progress.StateChecking)
	pieces := mi.Info.NumPieces()
	have, err := st.Verify(ctx, nil)
	if err != nil {
		return p.stopped(ctx, fmt.Errorf("agent: check %s: %w", download, err))
	}
	for k := range pieces {
		if have.Has(k) {
			p.done += mi.Info.PieceSize(k)
		}
	}
	if have.Count() > 0 {
		p.log.Info("resuming", "have_pieces", have.Count(), "pieces", pieces, "from", download)
	}

	// The follower unpacks an archive, or computes a single file's
	// SHA-256, as the pieces arrive; it starts with those found on disk.
	if p.art.Archive {
		format, _, _ := bundle.ParseArtifactName(mi.Info.Name)
		p.follow = startFollower(ctx, st, unpackArchive(mi.Info.Name, format, p.stage.Dir(), mi.Info.SHA256, mi.Info.ExternalSymlinks))
		defer p.follow.stop()
	} else if !mi.Info.MultiFile() && len(mi.Info.SHA256) > 0 {
		p.follow = startFollower(ctx, st, checkFile(mi.Info.Name, mi.Info.SHA256))
		defer p.follow.stop()
	}
	var verified func(int)
	if p.follow != nil {
		for k := range pieces {
			if have.Has(k) {
				p.follow.add(k)
			}
		}
		verified = p.follow.add
	}

	sw, err := swarm.New(swarm.Config{
		ListenAddr:    cfg.ListenAddr,
		AnnounceIP:    cfg.AnnounceIP,
		Datacenter:    cfg.Datacenter,
		Rack:          cfg.Rack,
		UploadRate:    cfg.UploadRate,
		DownloadRate:  cfg.DownloadRate,
		Logger:        p.log,
		Verified:      verified,
		AllowFrom:     cfg.AllowFrom,
		MaxConnsPerIP: cfg.MaxConnsPerIP,
	}, mi, st, have)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := sw.Listen(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	p.log.Info("downloading", "name", mi.Info.Name, "info_hash", mi.InfoHash().String(), "listen", sw.Addr().String())
	p.sw = sw
	p.metrics.setSwarm(sw)
	// Reported before the swarm runs, so that this first event counts
	// exactly the pieces found on disk.
	p.setState(progress.StateDownloading)
	swCtx, stopSwarm := context.WithCancel(ctx)
	defer stopSwarm()
	runErr := make(chan error, 1)
	go func() { runErr <- sw.Run(swCtx) }()
	// The swarm is stopped (announcing "stopped") on every way out.
	defer func() {
		stopSwarm()
		select {
		case <-runErr:
		case <-time.After(20 * time.Second):
			p.log.Warn("swarm did not stop in time")
		}
	}()

	interval := cfg.ProgressInterval
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	followDone := p.follow.Done()
wait:
	for {
		select {
		case <-sw.Complete():
			break wait
		case err := <-runErr:
			runErr <- err // for the deferred stop
			select {
			case <-sw.Complete():
				break wait
			default:
			}
			if err == nil {
				err = errors.New("stopped")
			}
			return p.stopped(ctx, fmt.Errorf("agent: download %s: %w", mi.Info.Name, err))
		case <-ctx.Done():
			return p.stopped(ctx, nil)
		case <-followDone:
			// A failure (a bad archive) ends the run at once.
			if err := p.follow.wait(ctx); err != nil {
				return p.stopped(ctx, err)
			}
			followDone = nil
		case <-tick.C:
			p.rep.Report(p.event(progress.EventProgress, ""))
		}
	}
	stats := sw.Stats()
	p.log.Info("all pieces verified", "name", mi.Info.Name, "bytes", p.total,
		"downloaded", stats.Downloaded, "seconds", time.Since(start).Seconds())
	p.setState(progress.StateDownloaded)

	p.setState(progress.StatePlacing)
	if err := p.place(ctx); err != nil {
		return p.stopped(ctx, err)
	}
	// The done event says whether the peer seeds on.
	p.state = progress.StateSeeding
	if cfg.SeedTime <= 0 {
		p.state = progress.StateDone
	}
	p.metrics.setState(p.state)
	p.rep.Report(p.event(progress.EventDone, ""))
	p.log.Info("files in place", "path", p.art.Destination)

	if cfg.SeedTime <= 0 {
		return nil
	}
	p.log.Info("seeding on", "for", cfg.SeedTime)
	timer := time.NewTimer(cfg.SeedTime)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			// The files are in place: an interrupt or the overall timeout
			// only cuts the seeding short.
			return nil
		case err := <-runErr:
			runErr <- err
			if err != nil {
				p.log.Warn("seeding stopped early", "err", err)
			}
			return nil
		case <-tick.C:
			p.rep.Report(p.event(progress.EventProgress, ""))
		}
	}
}

// stopped turns a failure while ctx may have ended into the error to report:
// a timeout says so with how far the download got.
func (p *peerRun) stopped(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	ev := p.event(progress.EventProgress, "")
	if errors.Is(cause, ErrTimeout) {
		return fmt.Errorf("%w after %s while %s %s (%s of %s, %d peers)", ErrTimeout, p.cfg.Timeout, p.state,
			p.art.Tag, bytesize.Format(ev.BytesDone), bytesize.Format(ev.BytesTotal), ev.Peers)
	}
	return fmt.Errorf("agent: %s %s: %w", p.state, p.art.Tag, cause)
}

// place puts the download in place: the follower's job (SHA-256 of a
// single file, or an archive unpacked) must have succeeded; then the new
// tree is renamed to the destination. The swarm seeds on from the files it
// has open, wherever they now are.
func (p *peerRun) place(ctx context.Context) error {
	if p.follow != nil {
		if err := p.follow.wait(ctx); err != nil {
			return err
		}
	}
	return p.stage.Commit()
}

// lockDownload takes an exclusive lock on TEMP/.NAME.murder-lock so two
// peers never write the same download at once.
func lockDownload(temp, name string) (unlock func(), err error) {
	path := filepath.Join(temp, "."+name+".murder-lock")
	// Read-only is enough for flock, and the temp path may be shared:
	// the lock is never written, and never a link to something else.
	f, _, err := storage.OpenOwned(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("agent: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("agent: another murder peer is downloading %s into %s", name, temp)
	}
	return func() { f.Close() }, nil
}
