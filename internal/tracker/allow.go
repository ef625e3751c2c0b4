package tracker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
)

// maxTorrentFile bounds the .torrent files an allow directory may hold.
const maxTorrentFile = 32 << 20

// allowList is the set of torrents an allow directory permits, with the
// bytes of each .torrent file so that it can be served.
type allowList struct {
	dir string
	log *slog.Logger

	mu     sync.RWMutex
	sig    string
	hashes map[[20]byte]string // info hash -> file name
	infos  map[[20]byte]torrentInfo
	files  map[string][]byte // file name -> contents
}

// torrentInfo is what the live page shows of an allowed torrent.
type torrentInfo struct {
	name string
	size int64
	ok   bool
}

// info returns the name and size of an allowed torrent.
func (a *allowList) info(ih [20]byte) torrentInfo {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.infos[ih]
}

func (a *allowList) has(ih [20]byte) bool {
	a.mu.RLock()
	_, ok := a.hashes[ih]
	a.mu.RUnlock()
	return ok
}

func (a *allowList) list() [][20]byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([][20]byte, 0, len(a.hashes))
	for h := range a.hashes {
		out = append(out, h)
	}
	return out
}

// file finds a .torrent by name: the exact file name, NAME.torrent, or the
// one file named NAME.*.torrent (so a tag finds TAG.tgz.torrent).
func (a *allowList) file(name string) (data []byte, file string, ok bool) {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, "", false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, n := range []string{name, name + ".torrent"} {
		if d, ok := a.files[n]; ok {
			return d, n, true
		}
	}
	var match string
	for n := range a.files {
		if strings.HasPrefix(n, name+".") && strings.HasSuffix(n, ".torrent") {
			if match != "" {
				return nil, "", false // ambiguous
			}
			match = n
		}
	}
	if match == "" {
		return nil, "", false
	}
	return a.files[match], match, true
}

// signature summarises the directory listing so that changes are noticed
// without reading every file.
func (a *allowList) signature() (string, error) {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return "", fmt.Errorf("tracker: allow dir: %w", err)
	}
	var b strings.Builder
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".torrent") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		b.WriteString(e.Name())
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(info.Size(), 10))
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(info.ModTime().UnixNano(), 10))
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// load (re)reads every .torrent file of the directory. Files that cannot be
// parsed are logged and left out.
func (a *allowList) load() error {
	sig, err := a.signature()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return fmt.Errorf("tracker: allow dir: %w", err)
	}
	hashes := make(map[[20]byte]string)
	infos := make(map[[20]byte]torrentInfo)
	files := make(map[string][]byte)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".torrent") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(a.dir, name)
		info, err := e.Info()
		if err != nil || info.Size() > maxTorrentFile {
			a.log.Warn("allow dir: skipping file", "file", path, "reason", "unreadable or larger than 32 MiB")
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			a.log.Warn("allow dir: skipping file", "file", path, "err", err)
			continue
		}
		m, err := metainfo.Parse(data)
		if err != nil {
			a.log.Warn("allow dir: skipping file", "file", path, "err", err)
			continue
		}
		ih := [20]byte(m.InfoHash())
		if prev, dup := hashes[ih]; dup {
			a.log.Warn("allow dir: same torrent twice", "file", name, "also", prev)
		}
		hashes[ih] = name
		infos[ih] = torrentInfo{name: CleanName(m.Info.Name), size: m.Info.TotalLength(), ok: true}
		files[name] = data
	}
	a.mu.Lock()
	a.sig, a.hashes, a.infos, a.files = sig, hashes, infos, files
	a.mu.Unlock()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	a.log.Info("allow dir loaded", "dir", a.dir, "torrents", len(hashes), "files", names)
	return nil
}

// run re-reads the directory whenever its listing changes, until ctx is
// done.
func (a *allowList) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sig, err := a.signature()
		if err != nil {
			a.log.Warn("allow dir unreadable; keeping the last list", "err", err)
			continue
		}
		a.mu.RLock()
		same := sig == a.sig
		a.mu.RUnlock()
		if same {
			continue
		}
		if err := a.load(); err != nil {
			a.log.Warn("allow dir unreadable; keeping the last list", "err", err)
		}
	}
}
