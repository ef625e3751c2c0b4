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

// localSig is where the tag's .torrent.sig is kept on this machine.
func (f *Fleet) localSig(tag string) string {
	return filepath.Join(f.cfg.LocalTempPath, sigName(tag))
}

// signArgs is create's --sign-key flag when deploys are signed.
func (f *Fleet) signArgs() string {
	if !f.inv.Trust.Signed() {
		return ""
	}
	return " --sign-key " + fleet.Quote(f.inv.Trust.SignKey)
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
			" --temp-path " + fleet.Quote(f.inv.TempPath) + f.signArgs() + " --force"
	}, "then fetch "+f.remoteTemp(torrentName(tag))+" to "+f.localTorrent(tag)+" on this machine"+f.sigNote()) {
		return nil
	}
	f.header("create-torrent", 1)
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		_, err := f.createSession(ctx, c, tag, filesPath, nil)
		return err
	})
}

// Lines that precede the .torrent and its signature on a create session's
// output: "murder-torrent SIZE\n", then SIZE bytes; likewise the
// signature when deploys are signed.
const (
	torrentLine   = "murder-torrent "
	signatureLine = "murder-signature "
)

// createSession packs filesPath on the seeder (c) into TEMP/TAG.tgz with a
// .torrent announcing to the trackers (signed when [trust] says so), and
// brings the .torrent (and its signature) back to the local temp path, in
// one session. With seed set, the session then waits for it: when it
// returns true, the seeder starts there in the same session, unless it
// runs already, and createSession returns "started" or "running".
// Otherwise it returns "".
func (f *Fleet) createSession(ctx context.Context, c *fleet.Conn, tag, filesPath string, seed func(ctx context.Context) bool) (string, error) {
	addrs, err := f.trackerAddrs(ctx)
	if err != nil {
		return "", err
	}
	var trackerArgs string
	for _, a := range addrs {
		trackerArgs += " --tracker " + fleet.Quote(a)
	}
	send := []string{
		`tf="$T"/` + fleet.Quote(torrentName(tag)),
		`echo "` + torrentLine + `$(wc -c < "$tf" | tr -d ' ')"`,
		`cat "$tf"`,
	}
	if f.inv.Trust.Signed() {
		send = append(send,
			`sf="$T"/`+fleet.Quote(sigName(tag)),
			`echo "`+signatureLine+`$(wc -c < "$sf" | tr -d ' ')"`,
			`cat "$sf"`)
	}
	lines := append([]string{
		`"$BIN" create --tag ` + fleet.Quote(tag) + ` --files-path ` + remotePath(filesPath) + trackerArgs + ` --temp-path "$T"` + f.signArgs() + ` --force`,
	}, send...)
	lines = append(lines, `read -r go || exit 0`, `[ "$go" = seed ] || exit 0`)
	lines = append(lines, f.startSeedLines(tag, c)...)
	var state string
	var got, talkErr error
	runErr := c.Interact(ctx, f.script(lines...), func(stdin io.WriteCloser, stdout io.Reader) {
		defer stdin.Close()
		br := bufio.NewReader(stdout)
		got = f.receiveRelease(tag, br)
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

// maxTorrent bounds the .torrent or signature a create session may send
// back.
const maxTorrent = 64 << 20

// receiveRelease reads create's output up to the .torrent (and, when
// deploys are signed, its signature) from a create session, prints
// create's lines, and keeps what came back in the local temp path. On an
// error the rest of r is left unread.
func (f *Fleet) receiveRelease(tag string, r *bufio.Reader) error {
	frame := func(prefix string) ([]byte, error) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return nil, errors.New("deploy: create: no .torrent came back")
			}
			line = strings.TrimSuffix(line, "\n")
			n, ok := strings.CutPrefix(line, prefix)
			if !ok {
				f.say("  %s", line)
				continue
			}
			size, err := strconv.Atoi(n)
			if err != nil || size < 0 || size > maxTorrent {
				return nil, fmt.Errorf("deploy: create: bad reply from the seeder (%q)", line)
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, fmt.Errorf("deploy: create: the .torrent that came back: %w", err)
			}
			return b, nil
		}
	}
	torrent, err := frame(torrentLine)
	if err != nil {
		return err
	}
	if _, err := metainfo.Parse(torrent); err != nil {
		return fmt.Errorf("deploy: create: the .torrent that came back: %w", err)
	}
	var sig []byte
	if f.inv.Trust.Signed() {
		if sig, err = frame(signatureLine); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(f.localTorrent(tag), torrent); err != nil {
		return err
	}
	f.say("  fetched %s to %s", f.remoteTemp(torrentName(tag)), f.localTorrent(tag))
	if sig != nil {
		if err := writeFileAtomic(f.localSig(tag), sig); err != nil {
			return err
		}
		f.say("  fetched %s to %s", f.remoteTemp(sigName(tag)), f.localSig(tag))
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
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
	if err := os.MkdirAll(f.cfg.LocalTempPath, 0o700); err != nil {
		return fmt.Errorf("deploy: local temp path: %w", err)
	}
	remote := f.remoteTemp(torrentName(tag))
	if err := c.FetchFile(ctx, remote, f.localTorrent(tag)); err != nil {
		return err
	}
	f.say("  fetched %s to %s", remote, f.localTorrent(tag))
	if f.inv.Trust.Signed() {
		remote = f.remoteTemp(sigName(tag))
		if err := c.FetchFile(ctx, remote, f.localSig(tag)); err != nil {
			return fmt.Errorf("deploy: the signature: %w", err)
		}
		f.say("  fetched %s to %s", remote, f.localSig(tag))
	}
	return nil
}

// sigNote is " and its .sig" when deploys are signed, for printing.
func (f *Fleet) sigNote() string {
	if f.inv.Trust.Signed() {
		return ", with its .sig beside it"
	}
	return ""
}

// DownloadTorrent brings TEMP/TAG.tgz.torrent from the seeder to the local
// temp path.
func (f *Fleet) DownloadTorrent(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if f.dryRun("download-torrent", []fleet.Host{f.inv.Seeder}, func(fleet.Host) string {
		return "fetch " + f.remoteTemp(torrentName(tag)) + " to " + f.localTorrent(tag) + " on this machine" + f.sigNote()
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
