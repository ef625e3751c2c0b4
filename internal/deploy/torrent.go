package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/metainfo"
)

// localTorrent is where the tag's .torrent is kept on this machine.
func (f *Fleet) localTorrent(tag string) string {
	return filepath.Join(f.cfg.LocalTempPath, torrentName(tag))
}

// CreateTorrent packs filesPath on the seeder into TEMP/TAG.tgz with a
// .torrent announcing to the tracker, and brings the .torrent back to the
// local temp path.
func (f *Fleet) CreateTorrent(ctx context.Context, tag, filesPath string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if filesPath == "" {
		return errors.New("deploy: --files-path is required")
	}
	if f.dryRun("create-torrent", []fleet.Host{f.inv.Seeder}, func(fleet.Host) string {
		return f.bin() + " create --tag " + fleet.Quote(tag) + " --files-path " + remotePath(filesPath) + f.dryTrackerArgs() +
			" --temp-path " + fleet.Quote(f.inv.TempPath) + " --force"
	}, "then fetch "+f.remoteTemp(torrentName(tag))+" to "+f.localTorrent(tag)+" on this machine") {
		return nil
	}
	f.header("create-torrent", 1)
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		_, err := f.createSession(ctx, c, tag, filesPath, nil)
		return err
	})
}

// torrentLine precedes the .torrent on a create session's output:
// "murder-torrent SIZE\n", then SIZE bytes.
const torrentLine = "murder-torrent "

// createSession packs filesPath on the seeder (c) into TEMP/TAG.tgz with a
// .torrent announcing to the trackers, and brings the .torrent back to the
// local temp path, in one session. With seed set, the session then waits
// for it: when it returns true, the seeder starts there in the same
// session, unless it runs already, and createSession returns "started" or
// "running". Otherwise it returns "".
func (f *Fleet) createSession(ctx context.Context, c *fleet.Conn, tag, filesPath string, seed func(ctx context.Context) bool) (string, error) {
	addrs, err := f.trackerAddrs(ctx)
	if err != nil {
		return "", err
	}
	var trackerArgs string
	for _, a := range addrs {
		trackerArgs += " --tracker " + fleet.Quote(a)
	}
	script := f.script(
		`"$BIN" create --tag `+fleet.Quote(tag)+` --files-path `+remotePath(filesPath)+trackerArgs+` --temp-path "$T" --force`,
		`tf="$T"/`+fleet.Quote(torrentName(tag)),
		`echo "`+torrentLine+`$(wc -c < "$tf" | tr -d ' ')"`,
		`cat "$tf"`,
		`read -r go || exit 0`,
		`[ "$go" = seed ] || exit 0`,
		"if murder_alive "+seedPid(tag)+" seed >/dev/null; then echo running; exit 0; fi",
		"murder_start "+seedPid(tag)+" "+seedLog(tag)+" "+seedLog(tag)+" "+shellWords(f.seedCommand(tag, c).args()),
		"echo started",
	)
	var state string
	var got, talkErr error
	runErr := c.Interact(ctx, script, func(stdin io.WriteCloser, stdout io.Reader) {
		defer stdin.Close()
		br := bufio.NewReader(stdout)
		got = errors.New("deploy: create: no .torrent came back")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				io.Copy(io.Discard, br)
				return
			}
			line = strings.TrimSuffix(line, "\n")
			n, ok := strings.CutPrefix(line, torrentLine)
			if !ok {
				f.say("  %s", line)
				continue
			}
			size, err := strconv.Atoi(n)
			if err != nil || size <= 0 || size > maxTorrent {
				got = fmt.Errorf("deploy: create: bad .torrent size %q", n)
				io.Copy(io.Discard, br)
				return
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(br, b); err != nil {
				got = fmt.Errorf("deploy: create: the .torrent that came back: %w", err)
				io.Copy(io.Discard, br)
				return
			}
			got = f.keepTorrent(tag, b)
			break
		}
		if got != nil || seed == nil || !seed(ctx) {
			stdin.Close()
			io.Copy(io.Discard, br)
			return
		}
		io.WriteString(stdin, "seed\n")
		stdin.Close()
		out, _ := io.ReadAll(br)
		state = strings.TrimSpace(string(out))
		if state != "started" && state != "running" {
			talkErr = fmt.Errorf("deploy: start seeding: the seeder host said %q", state)
		}
	})
	if runErr != nil {
		if got == nil && seed != nil {
			return "", fmt.Errorf("deploy: start seeding: %w", runErr)
		}
		return "", fmt.Errorf("deploy: create: %w", runErr)
	}
	if got != nil {
		return "", got
	}
	return state, talkErr
}

// maxTorrent bounds the .torrent a create session may send back.
const maxTorrent = 64 << 20

// keepTorrent checks the .torrent that came back and keeps it in the
// local temp path.
func (f *Fleet) keepTorrent(tag string, b []byte) error {
	if _, err := metainfo.Parse(b); err != nil {
		return fmt.Errorf("deploy: create: the .torrent that came back: %w", err)
	}
	if err := writeFileAtomic(f.localTorrent(tag), b); err != nil {
		return err
	}
	f.say("  fetched %s to %s", f.remoteTemp(torrentName(tag)), f.localTorrent(tag))
	return nil
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("deploy: local temp path: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".murder-fetch-*")
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	return nil
}

// remotePath quotes a path for the remote shell, expanding a leading ~/ to
// the remote user's home as Murder's files_path="~/files" did.
func remotePath(p string) string {
	switch {
	case p == "~":
		return `"$HOME"`
	case strings.HasPrefix(p, "~/"):
		return `"$HOME"/` + fleet.Quote(p[2:])
	}
	return fleet.Quote(p)
}

func (f *Fleet) fetchTorrent(ctx context.Context, c *fleet.Conn, tag string) error {
	if err := os.MkdirAll(f.cfg.LocalTempPath, 0o755); err != nil {
		return fmt.Errorf("deploy: local temp path: %w", err)
	}
	remote := f.remoteTemp(torrentName(tag))
	if err := c.FetchFile(ctx, remote, f.localTorrent(tag)); err != nil {
		return err
	}
	f.say("  fetched %s to %s", remote, f.localTorrent(tag))
	return nil
}

// DownloadTorrent brings TEMP/TAG.tgz.torrent from the seeder to the local
// temp path.
func (f *Fleet) DownloadTorrent(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if f.dryRun("download-torrent", []fleet.Host{f.inv.Seeder}, func(fleet.Host) string {
		return "fetch " + f.remoteTemp(torrentName(tag)) + " to " + f.localTorrent(tag) + " on this machine"
	}) {
		return nil
	}
	f.header("download-torrent", 1)
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		return f.fetchTorrent(ctx, c, tag)
	})
}

func (f *Fleet) loadTorrent(tag string) (*metainfo.MetaInfo, error) {
	mi, err := metainfo.Load(f.localTorrent(tag))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("deploy: no torrent for tag %q at %s: run create-torrent or download-torrent first", tag, f.localTorrent(tag))
		}
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return mi, nil
}
