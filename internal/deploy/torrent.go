package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	addrs, err := f.trackerAddrs(ctx)
	if err != nil {
		return err
	}
	var trackerArgs string
	for _, a := range addrs {
		trackerArgs += " --tracker " + fleet.Quote(a)
	}
	err = f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		// The .torrent comes back on standard output, in the same session;
		// when signed, its size first and its signature after it.
		var torrent, out bytes.Buffer
		send := `cat "$T"/` + fleet.Quote(torrentName(tag))
		if f.inv.Trust.Signed() {
			send = `wc -c < "$T"/` + fleet.Quote(torrentName(tag)) + `; ` + send + `; cat "$T"/` + fleet.Quote(sigName(tag))
		}
		err := c.Run(ctx, f.script(
			`"$BIN" create --tag `+fleet.Quote(tag)+` --files-path `+remotePath(filesPath)+
				trackerArgs+` --temp-path "$T"`+f.signArgs()+` --force >&2`,
			send,
		), nil, &torrent, &out)
		if err != nil {
			return fmt.Errorf("deploy: create: %w", err)
		}
		var sig []byte
		if f.inv.Trust.Signed() {
			size, rest, _ := bytes.Cut(torrent.Bytes(), []byte("\n"))
			n, err := strconv.Atoi(strings.TrimSpace(string(size)))
			if err != nil || n < 0 || n > len(rest) {
				return fmt.Errorf("deploy: create: bad reply from the seeder (%q)", size)
			}
			sig = bytes.Clone(rest[n:])
			torrent = *bytes.NewBuffer(bytes.Clone(rest[:n]))
		}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			f.say("  %s", l)
		}
		if _, err := metainfo.Parse(torrent.Bytes()); err != nil {
			return fmt.Errorf("deploy: create: the .torrent that came back: %w", err)
		}
		if err := writeFileAtomic(f.localTorrent(tag), torrent.Bytes()); err != nil {
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
	})
	return err
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
