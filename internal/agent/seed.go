package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/swarm"
)

// ErrNoTracker is returned (wrapped) by Seed when no tracker answered
// within SeedConfig.Timeout.
var ErrNoTracker = errors.New("agent: no tracker answered")

// ErrDataMismatch is returned (wrapped) when the data to seed does not match
// the torrent.
var ErrDataMismatch = errors.New("agent: data does not match the torrent")

// SeedConfig configures one `murder seed` run. Only Torrent is required.
type SeedConfig struct {
	// Torrent is the path of the .torrent file.
	Torrent string
	// Data is the artifact to serve: the file (or, for a multi-file
	// torrent, the directory). Empty means the torrent's name next to the
	// torrent file, or else in TempPath.
	Data string
	// TempPath is the second place to look for the artifact when Data is
	// empty. Empty means DefaultTempPath.
	TempPath string
	// AnnounceIP is the IP address sent to the tracker.
	AnnounceIP string
	// ListenAddr is the peer-wire listen address; empty picks a port.
	ListenAddr string
	// Datacenter and Rack say where this host runs; they are sent to the
	// tracker, whose topology gives them when empty. Peers of the same
	// datacenter are preferred (see swarm.Config).
	Datacenter, Rack string
	// AllowFrom, when not empty, lists the only addresses peers may
	// connect from or be dialed at (see swarm.Config).
	AllowFrom cidr.List
	// MaxConnsPerIP limits the connections with one remote address; zero
	// means swarm.DefaultMaxConnsPerIP, negative no limit.
	MaxConnsPerIP int
	// SeedTime stops seeding after this long; zero seeds until ctx ends.
	SeedTime time.Duration
	// Timeout fails the run (ErrNoTracker) when no tracker has answered
	// an announce this long after seeding starts; zero waits forever.
	Timeout time.Duration
	// UploadRate caps the upload in bytes per second; zero means no limit.
	UploadRate int64
	// MetricsAddr, when set, is the HOST:PORT where the run serves its
	// Prometheus metrics at /metrics (see docs/metrics.md); empty serves
	// none.
	MetricsAddr string
	// Logger receives human-readable messages; nil discards them.
	Logger *slog.Logger
}

// Seed verifies the data against the torrent and serves it until ctx ends or
// SeedTime passes, then announces stopped. Stopping that way is not an
// error.
func Seed(ctx context.Context, cfg SeedConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Torrent == "" {
		return errors.New("agent: no torrent given")
	}
	mi, err := metainfo.Load(cfg.Torrent)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	var rm runMetrics
	rm.setState(progress.StateChecking)
	if cfg.MetricsAddr != "" {
		stop, err := serveMetrics(ctx, cfg.MetricsAddr, log, mi, rm.snapshot)
		if err != nil {
			return err
		}
		defer stop()
	}
	data, err := findData(mi, cfg)
	if err != nil {
		return err
	}
	if err := checkLayout(&mi.Info, data); err != nil {
		return err
	}
	dir, cleanup, err := storageDir(&mi.Info, data)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := storage.Open(&mi.Info, dir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer st.Close()

	start := time.Now()
	var have *storage.Bitfield
	if !mi.Info.MultiFile() && bundle.Stamped(data, mi.InfoHash()) {
		// murder create hashed these very bytes, and nothing wrote to the
		// file since (its stamp says so): no second pass. Peers check
		// every piece they get anyway.
		have = storage.NewBitfield(mi.Info.NumPieces())
		have.SetAll()
		log.Info("verified", "data", data, "pieces", have.Len(), "by", "murder create's stamp")
	} else {
		if have, err = st.Verify(ctx, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agent: verify %s: %w", data, err)
		}
		if !have.Full() {
			return fmt.Errorf("%w: %s fails %d of %d pieces of %s", ErrDataMismatch, data,
				have.Len()-have.Count(), have.Len(), cfg.Torrent)
		}
		log.Info("verified", "data", data, "pieces", have.Len(), "seconds", time.Since(start).Seconds())
	}

	sw, err := swarm.New(swarm.Config{
		ListenAddr:    cfg.ListenAddr,
		AnnounceIP:    cfg.AnnounceIP,
		Datacenter:    cfg.Datacenter,
		Rack:          cfg.Rack,
		UploadRate:    cfg.UploadRate,
		Logger:        log,
		AllowFrom:     cfg.AllowFrom,
		MaxConnsPerIP: cfg.MaxConnsPerIP,
	}, mi, st, have)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if cfg.SeedTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.SeedTime)
		defer cancel()
	}
	if err := sw.Listen(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	rm.setSwarm(sw)
	rm.setState(progress.StateSeeding)
	log.Info("seeding", "name", mi.Info.Name, "info_hash", mi.InfoHash().String(), "listen", sw.Addr().String())
	statsCtx, stopStats := context.WithCancel(ctx)
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		logStats(statsCtx, log, sw, seedStatsEvery)
	}()
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	if cfg.Timeout > 0 {
		go func() {
			t := time.NewTimer(cfg.Timeout)
			defer t.Stop()
			select {
			case <-sw.Announced():
			case <-runCtx.Done():
			case <-t.C:
				stopRun(fmt.Errorf("%w within --timeout %s (trackers: %s)", ErrNoTracker, cfg.Timeout, trackerList(mi)))
			}
		}()
	}
	err = sw.Run(runCtx)
	stopStats()
	<-statsDone
	if cause := context.Cause(runCtx); errors.Is(cause, ErrNoTracker) {
		return cause
	}
	stats := sw.Stats()
	log.Info("seeding stopped", "uploaded", stats.Uploaded, "seconds", time.Since(start).Seconds())
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("agent: seed: %w", err)
	}
	return nil
}

// seedStatsEvery is how often a seeder logs what it has sent.
const seedStatsEvery = 30 * time.Second

// logStats logs the swarm's upload counters every interval until ctx ends.
func logStats(ctx context.Context, log *slog.Logger, sw *swarm.Swarm, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st := sw.Stats()
			log.Info("seeding", "peers", st.Peers, "uploaded", st.Uploaded, "up_rate", bytesize.FormatRate(st.UpRate))
		}
	}
}

// findData picks the artifact path: cfg.Data, or NAME beside the torrent,
// or NAME in the temp path.
func findData(mi *metainfo.MetaInfo, cfg SeedConfig) (string, error) {
	if cfg.Data != "" {
		if _, err := os.Stat(cfg.Data); err != nil {
			return "", fmt.Errorf("agent: data: %w", err)
		}
		return cfg.Data, nil
	}
	temp := cfg.TempPath
	if temp == "" {
		temp = DefaultTempPath
	}
	candidates := []string{
		filepath.Join(filepath.Dir(cfg.Torrent), mi.Info.Name),
		filepath.Join(temp, mi.Info.Name),
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("agent: no data for %s: neither %s nor %s exists (give --data)",
		cfg.Torrent, candidates[0], candidates[1])
}

// checkLayout makes sure every file of the torrent exists at data with the
// right size, so a wrong --data fails clearly before hashing (and storage
// never creates files in a seeder's data).
func checkLayout(info *metainfo.Info, data string) error {
	fi, err := os.Stat(data)
	if err != nil {
		return fmt.Errorf("agent: data: %w", err)
	}
	if !info.MultiFile() {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrDataMismatch, data)
		}
		if fi.Size() != info.Length {
			return fmt.Errorf("%w: %s has %d bytes, the torrent says %d", ErrDataMismatch, data, fi.Size(), info.Length)
		}
		return nil
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory (the torrent has several files)", ErrDataMismatch, data)
	}
	for _, f := range info.Files {
		if f.IsPad() {
			continue
		}
		p := filepath.Join(append([]string{data}, f.Path...)...)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDataMismatch, err)
		}
		if fi.Size() != f.Length {
			return fmt.Errorf("%w: %s has %d bytes, the torrent says %d", ErrDataMismatch, p, fi.Size(), f.Length)
		}
	}
	return nil
}

// storageDir returns the directory to open storage in: data's parent when
// data is named like the torrent, else a temporary directory holding a
// symlink NAME -> data.
func storageDir(info *metainfo.Info, data string) (dir string, cleanup func(), err error) {
	abs, err := filepath.Abs(data)
	if err != nil {
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	if filepath.Base(abs) == info.Name {
		return filepath.Dir(abs), func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "murder-seed-*")
	if err != nil {
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	if err := os.Symlink(abs, filepath.Join(tmp, info.Name)); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// trackerList names a torrent's trackers for an error message.
func trackerList(mi *metainfo.MetaInfo) string {
	var urls []string
	for _, tier := range mi.Trackers() {
		urls = append(urls, tier...)
	}
	return strings.Join(urls, ", ")
}
