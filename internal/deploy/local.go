package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
	"github.com/murder-deploy/murder/internal/release"
	"github.com/murder-deploy/murder/internal/tracker"
)

// LocalConfig configures a deploy on this machine alone.
type LocalConfig struct {
	Peers              int    // number of peers (required, >= 1)
	FilesPath          string // directory (or file) to distribute (required)
	Destination        string // each peer extracts into Destination/peer-K/TAG (required)
	Tag                string // "" = DefaultTag(FilesPath, now)
	NoTagDirectory     bool
	UnsafePleaseDelete bool
	// Binary is the murder binary to run; "" means the running executable.
	Binary string
	// Timeout bounds the whole run; 0 means one hour.
	Timeout time.Duration
	// MaxUploadRate and MaxDownloadRate are passed to seed and peer ("" = no limit).
	MaxUploadRate, MaxDownloadRate string
	// KeepTemp keeps the work directory (artifact, logs) after success.
	KeepTemp bool
	// Activate, when set, switches each peer's DESTINATION/peer-K/current
	// to the tag once the peers have it, as on a fleet (its Destination
	// is ignored).
	Activate *ActivateOptions
	// Linger keeps the tracker, and its live page, up this long after the
	// peers are done and stopped; 0 stops it with them.
	Linger time.Duration
	Out    io.Writer // human report; nil discards it
	Live   bool      // redraw the progress line in place
	Logger *slog.Logger
	// Verbose adds the time of each step to the summary.
	Verbose bool
}

// localTrackerInterval is the announce interval of a local deploy's
// tracker.
const localTrackerInterval = 2 * time.Second

var tagChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DefaultTag names a deploy after what it distributes and when: the base
// name of filesPath and a UTC timestamp, e.g. "build-20260101-120000".
func DefaultTag(filesPath string, now time.Time) string {
	base := tagChars.ReplaceAllString(filepath.Base(filepath.Clean(filesPath)), "-")
	base = strings.Trim(strings.ReplaceAll(base, "..", "-"), "-.")
	if n := bundle.MaxTagLength - len("-20060102-150405"); len(base) > n {
		base = strings.TrimRight(base[:n], "-.")
	}
	if base == "" {
		base = "files"
	}
	return base + "-" + now.UTC().Format("20060102-150405")
}

// Local runs the whole pipeline on this machine: a tracker, a seeder and
// N peers as processes of the murder binary on 127.0.0.1 with free ports,
// each peer extracting into Destination/peer-K. It returns a summary when
// every peer has finished, successfully or not.
func Local(ctx context.Context, cfg LocalConfig) (*Summary, error) {
	start := time.Now()
	st := newSteps(start)
	if cfg.Peers < 1 {
		return nil, fmt.Errorf("deploy: --local needs at least 1 peer, got %d", cfg.Peers)
	}
	if cfg.FilesPath == "" {
		return nil, errors.New("deploy: --files-path is required")
	}
	if cfg.Destination == "" {
		return nil, errors.New("deploy: --destination-path is required")
	}
	fi, err := os.Stat(cfg.FilesPath)
	if err != nil {
		return nil, fmt.Errorf("deploy: files path: %w", err)
	}
	if !fi.IsDir() {
		// A single file is distributed as it is, under its own name.
		if cfg.Tag != "" {
			return nil, errors.New("deploy: --tag names a directory's archive; a single file keeps its name (DESTINATION/peer-K/NAME/NAME)")
		}
		cfg.Tag = filepath.Base(cfg.FilesPath)
	}
	if cfg.Tag == "" {
		cfg.Tag = DefaultTag(cfg.FilesPath, start)
	}
	if err := ValidTag(cfg.Tag); err != nil {
		return nil, err
	}
	if cfg.Activate != nil && (cfg.NoTagDirectory || !fi.IsDir()) {
		return nil, errors.New("deploy: --activate switches DESTINATION/current between tag directories: it needs a directory and no --no-tag-directory")
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Hour
	}
	if cfg.Binary == "" {
		if cfg.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("deploy: find the murder binary: %w", err)
		}
	}
	dest, err := filepath.Abs(cfg.Destination)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	files, err := filepath.Abs(cfg.FilesPath)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	// Refuse before starting anything when a peer would refuse.
	if !cfg.UnsafePleaseDelete {
		for k := 1; k <= cfg.Peers; k++ {
			d := filepath.Join(dest, "peer-"+strconv.Itoa(k))
			if !cfg.NoTagDirectory {
				d = filepath.Join(d, cfg.Tag)
			}
			if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 {
				return nil, fmt.Errorf("deploy: %s exists and is not empty: pick another --tag, or pass --unsafe-please-delete to replace it", d)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	work, err := os.MkdirTemp("", "murder-local-")
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	l := &localRun{cfg: cfg, work: work, out: cfg.Out}
	// The processes run in their own process groups, so a Ctrl-C reaches
	// only this one; it stops them in order.
	stopOnCancel := context.AfterFunc(ctx, l.stopAll)
	defer stopOnCancel()
	ok := false
	defer func() {
		l.stopAll()
		if ok && !cfg.KeepTemp {
			os.RemoveAll(work)
		} else {
			fmt.Fprintf(cfg.Out, "logs and artifact kept in %s\n", work)
		}
	}()
	say := func(format string, args ...any) { fmt.Fprintf(cfg.Out, format+"\n", args...) }
	say("murder deploy --local: %s -> %s/peer-{1..%d}, tag %s", files, dest, cfg.Peers, cfg.Tag)

	// Tracker, which comes up while the torrent is created: create needs
	// only its address.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	trackerAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	endTracker := st.begin("start-tracker")
	// A short interval: peers on loopback cost the tracker nothing, and its
	// live page then follows each peer's progress closely.
	tr, err := l.start(ctx, "tracker", nil, "tracker", "--listen", trackerAddr, "--interval", localTrackerInterval.String())
	if err != nil {
		return nil, err
	}
	tc := tracker.NewClient([][]string{{"http://" + trackerAddr + "/announce"}}, tracker.ClientConfig{Timeout: 2 * time.Second, Logger: cfg.Logger})
	trackerUp := make(chan error, 1)
	go func() {
		err := waitUntil(ctx, 10*time.Second, tr, func() error {
			return tc.Alive(ctx)
		})
		endTracker()
		trackerUp <- err
	}()

	// Artifact and torrent.
	endCreate := st.begin("create-torrent")
	seedDir := filepath.Join(work, "seed")
	createArgs := []string{"create", "--tag", cfg.Tag, "--files-path", files, "--tracker", trackerAddr, "--temp-path", seedDir}
	if !fi.IsDir() {
		createArgs = append(createArgs, "--path-is-file")
	}
	out, err := exec.CommandContext(ctx, cfg.Binary, createArgs...).CombinedOutput()
	endCreate()
	if terr := <-trackerUp; terr != nil {
		return nil, fmt.Errorf("deploy: tracker on %s: %w%s", trackerAddr, terr, l.logTail("tracker", ""))
	}
	say("==> tracker on %s, live page at http://%s/", trackerAddr, trackerAddr)
	if err != nil {
		return nil, fmt.Errorf("deploy: murder create: %s", oneLine(strings.TrimPrefix(strings.TrimSpace(string(out)), "murder: ")))
	}
	torrents, _ := filepath.Glob(filepath.Join(seedDir, "*.torrent"))
	if len(torrents) != 1 {
		return nil, fmt.Errorf("deploy: murder create left %d .torrent files in %s, want 1", len(torrents), seedDir)
	}
	torrent := torrents[0]
	mi, err := metainfo.Load(torrent)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	hash := mi.InfoHash()
	size := mi.Info.TotalLength()
	say("==> created %s: %s, %d pieces, info hash %s", filepath.Base(strings.TrimSuffix(torrent, ".torrent")), bytesize.Format(size), mi.Info.NumPieces(), hash)

	// Seeder.
	// Every process is at 127.0.0.1: no limit of connections per address.
	seedArgs := seedCommand{Torrent: torrent, IP: "127.0.0.1", Listen: "127.0.0.1:0", MaxUploadRate: cfg.MaxUploadRate, MaxConnsPerIP: "0"}.args()
	endSeed := st.begin("start-seeding")
	sd, err := l.start(ctx, "seed", nil, seedArgs...)
	if err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, 2*time.Minute, sd, func() error {
		st, err := tc.Scrape(ctx, hash)
		if err != nil {
			return err
		}
		if st[hash].Complete == 0 {
			return errors.New("seeder has not announced yet")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("deploy: seeder: %w%s", err, l.logTail("seed", ""))
	}
	endSeed()
	say("==> seeding")

	// Peers.
	say("==> peer (%d peers)", cfg.Peers)
	prog := newStatusLine(cfg.Out, cfg.Live, "peer", cfg.Peers)
	pctx, stopProg := context.WithCancel(ctx)
	defer stopProg()
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); prog.run(pctx) }()
	peerStart := time.Now()
	var rec recorder
	endPeer := st.begin("peer")
	var mu sync.Mutex
	var lastInPlace time.Time
	errs := make([]error, cfg.Peers)
	var firstPath string // where peer-1 placed the files
	var wg sync.WaitGroup
	for k := 1; k <= cfg.Peers; k++ {
		name := "peer-" + strconv.Itoa(k)
		args := peerCommand{
			Torrent:     torrent,
			Destination: filepath.Join(dest, name),
			TempPath:    filepath.Join(work, name),
			IP:          "127.0.0.1",
			Listen:      "127.0.0.1:0",
			// Peers seed on until every peer is done; then they are stopped.
			SeedTime:           cfg.Timeout,
			Timeout:            cfg.Timeout,
			NoTagDirectory:     cfg.NoTagDirectory,
			UnsafePleaseDelete: cfg.UnsafePleaseDelete,
			PathIsFile:         !fi.IsDir(),
			MaxUploadRate:      cfg.MaxUploadRate,
			MaxDownloadRate:    cfg.MaxDownloadRate,
			MaxConnsPerIP:      "0",
		}.args()
		stdout, perr := l.pipe()
		if perr != nil {
			return nil, perr
		}
		p, err := l.start(ctx, name, stdout, args...)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, err := followPeer(stdout.r, p, name, prog)
			if err == nil && k == 1 {
				firstPath = path
			}
			switch {
			case err == nil:
			case ctx.Err() != nil:
				err = errors.New("stopped before it finished")
			default:
				err = fmt.Errorf("%w%s", err, l.logTail(name, err.Error()))
			}
			prog.finish(name, err == nil, errString(err))
			var placed int64
			if err == nil {
				placed = size
				mu.Lock()
				lastInPlace = time.Now()
				mu.Unlock()
			}
			rec.add(name, time.Since(peerStart), placed, err)
			if err != nil {
				errs[k-1] = &fleet.HostError{Host: fleet.Host{Spec: name}, Err: err}
			}
		}()
	}
	wg.Wait()
	endPeer()
	stopProg()
	pwg.Wait()
	sum := &Summary{Hosts: cfg.Peers}
	for _, e := range errs {
		if e == nil {
			sum.Succeeded++
			sum.Bytes += size
		}
	}
	if !lastInPlace.IsZero() {
		sum.FilesInPlace = lastInPlace.Sub(start)
	}
	where := ""
	if rel, err := filepath.Rel(filepath.Join(dest, "peer-1"), firstPath); err == nil && firstPath != "" && !strings.HasPrefix(rel, "..") {
		where = " at " + filepath.Join(dest, "peer-K", rel)
	}
	say("  %d/%d peers have %s in place%s in %s", sum.Succeeded, cfg.Peers, cfg.Tag, where, roundDur(time.Since(peerStart)))
	// An interrupt while the tracker lingers ends the linger, not the
	// deploy, which is over.
	interrupted := ctx.Err()
	linger := cfg.Linger > 0 && interrupted == nil
	endStop := st.begin("stop")
	if linger {
		l.stopAllBut(tr)
	} else {
		l.stopAll()
	}
	endStop()
	var names []string
	for k := 1; k <= cfg.Peers; k++ {
		names = append(names, "peer-"+strconv.Itoa(k))
	}
	var activateErr error
	if cfg.Activate != nil && interrupted == nil {
		var ready []string
		for k, e := range errs {
			if e == nil {
				ready = append(ready, names[k])
			}
		}
		endActivate := st.begin("activate")
		activateErr = activateLocal(ctx, cfg, dest, ready, &rec, say)
		endActivate()
	}
	sum.Wall = time.Since(start)
	sum.Steps = st.list()
	sum.Result = rec.result("deploy", cfg.Tag, names, sum.Wall, activateErr)
	sum.print(cfg.Out, "peers", cfg.Verbose)
	if linger {
		say("==> tracker and live page stay up for %s at http://%s/", cfg.Linger, trackerAddr)
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Linger):
		}
		l.stopAll()
	}
	if errors.Is(interrupted, context.DeadlineExceeded) {
		return sum, fmt.Errorf("deploy: --timeout %s passed before every peer finished", cfg.Timeout)
	}
	if interrupted != nil {
		return sum, errors.New("deploy: interrupted")
	}
	if err := errors.Join(append(errs, activateErr)...); err != nil {
		return sum, fleet.NewFailedHostsError(err, cfg.Peers)
	}
	ok = true
	return sum, nil
}

// followPeer reads a peer's JSON events until it reports done (returning
// where the files are) or error, or exits.
func followPeer(r io.Reader, p *localProc, name string, prog *statusLine) (string, error) {
	pr := progress.NewReader(r)
	var result error
	var path string
	done := false
	for {
		ev, err := pr.Next()
		if err != nil {
			break
		}
		switch ev.Event {
		case progress.EventDone:
			prog.update(name, ev)
			done = true
			path = ev.Path
		case progress.EventError:
			result = errors.New(ev.Message)
		default:
			prog.update(name, ev)
		}
		if done || result != nil {
			break
		}
	}
	go io.Copy(io.Discard, r) // keep the pipe drained while it seeds on
	if done {
		return path, nil
	}
	if result != nil {
		return "", result
	}
	<-p.exited
	return "", fmt.Errorf("peer exited before the files were in place (%v)", p.err)
}

type localRun struct {
	cfg   LocalConfig
	work  string
	out   io.Writer
	mu    sync.Mutex
	procs []*localProc
}

type localProc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

type pipePair struct {
	r *os.File
	w *os.File
}

func (l *localRun) pipe() (*pipePair, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return &pipePair{r: r, w: w}, nil
}

// start runs the murder binary with args, logging stderr (and stdout
// unless a pipe is given) to WORK/NAME.log.
func (l *localRun) start(ctx context.Context, name string, stdout *pipePair, args ...string) (*localProc, error) {
	logf, err := os.Create(filepath.Join(l.work, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	cmd := exec.Command(l.cfg.Binary, args...)
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdout != nil {
		cmd.Stdout = stdout.w
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("deploy: start murder %s: %w", args[0], err)
	}
	logf.Close()
	if stdout != nil {
		stdout.w.Close()
	}
	p := &localProc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// stopAll sends SIGTERM to every process still running, and SIGKILL to
// those that have not exited 10 seconds later. It is safe to call twice.
func (l *localRun) stopAll() { l.stopAllBut(nil) }

// stopAllBut stops every process but keep, as stopAll does.
func (l *localRun) stopAllBut(keep *localProc) {
	l.mu.Lock()
	var procs []*localProc
	for _, p := range l.procs {
		if p != keep {
			procs = append(procs, p)
		}
	}
	l.procs = nil
	if keep != nil {
		l.procs = []*localProc{keep}
	}
	l.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(10 * time.Second)
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-deadline:
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// logTail returns the last line of a process's log for an error message,
// unless msg already says it.
func (l *localRun) logTail(name, msg string) string {
	b, err := os.ReadFile(filepath.Join(l.work, name+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-1]), "murder: ")
	if last == "" || strings.Contains(msg, last) {
		return ""
	}
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return " (log: " + last + ")"
}

// waitUntil polls check until it succeeds, p exits, ctx ends or limit
// passes.
func waitUntil(ctx context.Context, limit time.Duration, p *localProc, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("murder %s exited (%v)", p.name, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", limit, err)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("deploy: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// activateLocal switches DEST/peer-K/current to the tag for the ready
// peers, in waves, with murder activate's own code; each peer's hook
// output is printed under its name.
func activateLocal(ctx context.Context, cfg LocalConfig, dest string, ready []string, rec *recorder, say func(string, ...any)) error {
	opt := *cfg.Activate
	say("==> activate (%d peers)", len(ready))
	if err := enoughHosts(len(ready), cfg.Peers, opt.MinHosts, cfg.Tag); err != nil {
		for _, n := range ready {
			rec.add(n, 0, 0, err)
		}
		return err
	}
	var mu sync.Mutex // orders the peers' reports
	rest, err := rollout(ctx, ready, opt.Canary, opt.Batch, say, func(ctx context.Context, wave []string) error {
		errs := make([]error, len(wave))
		var wg sync.WaitGroup
		for i, name := range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				var out bytes.Buffer
				res, err := release.Activate(ctx, release.Options{
					Destination:    filepath.Join(dest, name),
					Tag:            cfg.Tag,
					KeepReleases:   opt.KeepReleases,
					Shared:         opt.Shared,
					BeforeActivate: opt.BeforeActivate,
					AfterActivate:  opt.AfterActivate,
					HookOutput:     &out,
				})
				rec.add(name, time.Since(start), 0, err)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					say("  %-24s FAILED: %s", name, oneLine(err.Error()))
				case res.Previous != "":
					say("  %-24s activated %s (previous: %s)", name, res.Tag, res.Previous)
				default:
					say("  %-24s activated %s", name, res.Tag)
				}
				for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
					if l != "" {
						say("  %-24s | %s", name, l)
					}
				}
				if err != nil {
					errs[i] = &fleet.HostError{Host: fleet.Host{Spec: name}, Err: err}
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	if err != nil {
		for _, n := range rest {
			rec.add(n, 0, 0, errors.New("not activated: "+stopReason(err)+"; still on the previous release"))
		}
	}
	return err
}
