package bundle

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/metainfo"
)

// CreateOptions says what Create packs and where it writes. The zero value
// of every field but Tag and FilesPath is usable.
type CreateOptions struct {
	// Tag names the artifact: TEMP/TAG.tgz. Required (see ValidateTag).
	Tag string
	// FilesPath is the directory to pack, or with PathIsFile the one file
	// to distribute as it is.
	FilesPath string
	// TempPath is where the artifact and the .torrent are written; it is
	// created when missing. Empty means os.TempDir().
	TempPath string
	// PathIsFile distributes FilesPath, a regular file, unpacked: the
	// artifact is TEMP/<its base name>, a copy of it.
	PathIsFile bool
	// Format of the archive; the zero value is TGZ.
	Format Format
	// Exclude adds glob patterns (path.Match syntax, matched against both
	// the base name and the path relative to FilesPath) to ".git*", which
	// is always left out.
	Exclude []string
	// PieceLength overrides the piece length: a power of two from 16 KiB to
	// 256 MiB. Zero chooses one from the size of the tar stream.
	PieceLength int64
	// Trackers are announce URLs or HOST:PORT pairs (see TrackerURL); the
	// first becomes announce, all go into announce-list.
	Trackers []string
	// Force overwrites an existing artifact or .torrent.
	Force bool
	// CreatedBy fills the torrent's "created by" field when not empty.
	CreatedBy string
	// AllowExternalSymlinks packs symlinks that point outside FilesPath
	// (refused otherwise) and marks the torrent so that peers keep them.
	AllowExternalSymlinks bool
	// SignKey, when set, is the path of an OpenSSH private key (without a
	// passphrase) that signs the .torrent: TEMP/NAME.torrent.sig is the
	// SSHSIG signature of its exact bytes in namespace "murder", as
	// `ssh-keygen -Y sign -n murder` writes it.
	SignKey string
}

// CreateResult describes what Create wrote.
type CreateResult struct {
	ArtifactPath string // TEMP/TAG.tgz
	TorrentPath  string // ArtifactPath + ".torrent"
	// SignaturePath is TorrentPath + ".sig" when SignKey was given, else "".
	SignaturePath string
	Size          int64 // artifact size in bytes
	PieceLength   int64
	NumPieces     int
	Entries       int // files, directories and symlinks archived
	// ExternalSymlinks counts the symlinks pointing outside the tree
	// (kept with AllowExternalSymlinks).
	ExternalSymlinks int
	SHA256           [32]byte
	InfoHash         metainfo.Hash
	MetaInfo         *metainfo.MetaInfo
}

// ErrBadTracker is returned (wrapped) for a tracker address that is
// neither HOST:PORT nor an http(s) URL.
var ErrBadTracker = errors.New("bundle: bad tracker")

// ErrExists is returned (wrapped) when an output file exists and
// CreateOptions.Force is not set.
var ErrExists = errors.New("bundle: output exists")

// Create packs opts.FilesPath into TEMP/TAG.<format> and writes
// TEMP/TAG.<format>.torrent. It walks, archives, compresses (on all cores),
// writes and hashes (SHA-1 per piece on all cores, SHA-256 of the whole
// artifact) in one streaming pass. Outputs are written under temporary
// names and renamed into place, so a failure leaves nothing half-written.
func Create(ctx context.Context, opts CreateOptions) (*CreateResult, error) {
	if err := ValidateTag(opts.Tag); err != nil {
		return nil, err
	}
	if opts.Format < TGZ || opts.Format > Tar {
		return nil, fmt.Errorf("bundle: unknown format %d", int(opts.Format))
	}
	trackers := make([]string, 0, len(opts.Trackers))
	for _, t := range opts.Trackers {
		u, err := TrackerURL(t)
		if err != nil {
			return nil, err
		}
		trackers = append(trackers, u)
	}
	if opts.PieceLength != 0 {
		if err := ValidatePieceLength(opts.PieceLength); err != nil {
			return nil, err
		}
	}
	if opts.FilesPath == "" {
		return nil, errors.New("bundle: no files path given")
	}
	src, err := os.Stat(opts.FilesPath)
	if err != nil {
		return nil, fmt.Errorf("bundle: files path: %w", err)
	}
	if opts.PathIsFile && !src.Mode().IsRegular() {
		return nil, fmt.Errorf("bundle: files path %s is not a regular file (drop --path-is-file to pack a directory)", opts.FilesPath)
	}
	if !opts.PathIsFile && !src.IsDir() {
		return nil, fmt.Errorf("bundle: files path %s is not a directory (use --path-is-file to distribute one file)", opts.FilesPath)
	}
	if opts.PathIsFile && src.Size() == 0 {
		return nil, fmt.Errorf("bundle: files path %s is empty; there is nothing to distribute", opts.FilesPath)
	}
	m, err := newMatcher(opts.Exclude)
	if err != nil {
		return nil, err
	}
	// The key is read before any work, so that a key murder cannot use
	// fails at once rather than after packing.
	var signer ssh.Signer
	if opts.SignKey != "" {
		if signer, err = LoadSignKey(opts.SignKey); err != nil {
			return nil, err
		}
	}

	temp := opts.TempPath
	if temp == "" {
		temp = os.TempDir()
	}
	if err := os.MkdirAll(temp, 0o755); err != nil {
		return nil, fmt.Errorf("bundle: temp path: %w", err)
	}
	name := ArtifactName(opts.Tag, opts.Format)
	if opts.PathIsFile {
		name = filepath.Base(opts.FilesPath)
	}
	res := &CreateResult{ArtifactPath: filepath.Join(temp, name)}
	res.TorrentPath = res.ArtifactPath + ".torrent"
	outputs := []string{res.ArtifactPath, res.TorrentPath}
	if signer != nil {
		res.SignaturePath = SignaturePath(res.TorrentPath)
		outputs = append(outputs, res.SignaturePath)
	}

	inPlace := false // --path-is-file naming a file already in the temp path
	if opts.PathIsFile {
		if fi, err := os.Stat(res.ArtifactPath); err == nil && os.SameFile(fi, src) {
			inPlace = true
		}
	}
	if !opts.Force {
		for _, p := range outputs {
			if p == res.ArtifactPath && inPlace {
				continue
			}
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%w: %s (use --force to overwrite)", ErrExists, p)
			}
		}
	}

	var entries []entry
	estimate := src.Size()
	if !opts.PathIsFile {
		entries, estimate, err = collect(ctx, opts.FilesPath, m)
		if err != nil {
			return nil, err
		}
		// Refused here, before packing, rather than by every peer after
		// the download.
		if ext := externalLinks(entries); len(ext) > 0 {
			if !opts.AllowExternalSymlinks {
				list := ext
				if len(list) > 20 {
					list = append(list[:20:20], fmt.Sprintf("and %d more", len(ext)-20))
				}
				return nil, fmt.Errorf("%w, which peers refuse: %s (remove them, leave them out with --exclude, or pass --allow-external-symlinks to keep them)", ErrExternalSymlinks, strings.Join(list, ", "))
			}
			res.ExternalSymlinks = len(ext)
		}
	}
	res.Entries = len(entries)
	var pieces *hashSet
	if opts.PieceLength != 0 {
		pieces = newHashSet([]int64{opts.PieceLength}, nil)
	} else {
		pieces = newHashSet([]int64{metainfo.ChoosePieceLength(guessSize(estimate, opts))}, metainfo.ChoosePieceLength)
	}
	sum256 := sha256.New()
	counter := &countWriter{}
	sink := io.MultiWriter(sum256, pieces, counter)

	var tmpName string
	switch {
	case inPlace:
		err = hashFile(ctx, sink, opts.FilesPath, src.Size())
	default:
		tmpName, err = writeArtifact(ctx, temp, name, sink, func(w io.Writer) error {
			if opts.PathIsFile {
				return copyFile(ctx, w, opts.FilesPath, src.Size(), make([]byte, 1<<20))
			}
			return compress(ctx, w, opts, entries)
		})
	}
	if err != nil {
		pieces.Abort()
		return nil, err
	}
	res.Size = counter.n
	copy(res.SHA256[:], sum256.Sum(nil))
	pieceLen, sums, ok := pieces.Sum()
	if !ok {
		// The guessed piece length was wrong for the size the artifact
		// came out at: hash it again from the file, still on all cores.
		written := tmpName
		if written == "" {
			written = opts.FilesPath
		}
		h := newHashSet([]int64{pieceLen}, nil)
		if err := hashFile(ctx, h, written, res.Size); err != nil {
			h.Abort()
			removeTemp(tmpName)
			return nil, err
		}
		_, sums, _ = h.Sum()
	}
	res.PieceLength = pieceLen
	res.NumPieces = len(sums) / 20
	info := metainfo.Info{
		Name:        name,
		PieceLength: res.PieceLength,
		Pieces:      sums,
		Length:      res.Size,
		SHA256:      res.SHA256[:],
		// Peers keep such links only when the torrent says so.
		ExternalSymlinks: res.ExternalSymlinks > 0,
	}
	mi, err := metainfo.New(info, trackers)
	if err != nil {
		removeTemp(tmpName)
		return nil, fmt.Errorf("bundle: %w", err)
	}
	mi.CreatedBy = opts.CreatedBy
	if mi.CreationDate == 0 {
		mi.CreationDate = time.Now().Unix()
	}
	res.MetaInfo = mi
	res.InfoHash = mi.InfoHash()

	// A stamp of an earlier artifact of the same name goes first: it
	// must never vouch for other bytes.
	if err := os.Remove(res.ArtifactPath + StampSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		removeTemp(tmpName)
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if tmpName != "" {
		if err := os.Rename(tmpName, res.ArtifactPath); err != nil {
			removeTemp(tmpName)
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	if err := metainfo.WriteFile(res.TorrentPath, mi, opts.Force); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if tmpName != "" {
		// The pieces were hashed from the very bytes written to it.
		if err := writeStamp(res.ArtifactPath, res.InfoHash); err != nil {
			return nil, err
		}
	}
	// A signature left from an earlier torrent of the same name is not
	// this one's: it goes, and the new one (if any) takes its place.
	sigPath := SignaturePath(res.TorrentPath)
	if signer == nil {
		if err := os.Remove(sigPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle: remove the old signature: %w", err)
		}
		return res, nil
	}
	data, err := mi.Bytes()
	if err == nil {
		err = SignTorrent(signer, data, sigPath, opts.Force)
	}
	if err != nil {
		// A torrent without the signature asked for is not left behind.
		os.Remove(res.TorrentPath)
		return nil, err
	}
	return res, nil
}

// guessSize guesses the artifact's size from the tar stream's size, to
// pick the piece length before compression is done. Piece lengths are
// powers of two, so a guess within a factor of about two of the real
// ratio is right; when it is not, Create hashes the artifact once more.
func guessSize(tarSize int64, opts CreateOptions) int64 {
	if opts.PathIsFile || opts.Format == Tar {
		return tarSize
	}
	return tarSize / 5 * 2 // source trees and builds compress to 25-50 %
}

// writeArtifact writes what fill produces to a temporary file in dir, and
// through sink, and returns the temporary file's name.
func writeArtifact(ctx context.Context, dir, name string, sink io.Writer, fill func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	aw := newAsyncWriter(io.MultiWriter(f, sink), 1<<20, 8)
	err = fill(aw)
	if cerr := aw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		removeTemp(f.Name())
		if !strings.HasPrefix(err.Error(), "bundle:") && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("bundle: %w", err)
		}
		return "", err
	}
	return f.Name(), nil
}

func removeTemp(name string) {
	if name != "" {
		_ = os.Remove(name)
	}
}

// gzipBlockSize is fixed, not derived from the machine, because pgzip's
// output depends on it and archives must be the same everywhere.
const gzipBlockSize = 1 << 20

// compress writes the tar stream of entries to w in opts.Format.
func compress(ctx context.Context, w io.Writer, opts CreateOptions, entries []entry) error {
	workers := runtime.GOMAXPROCS(0)
	switch opts.Format {
	case Tar:
		return writeTar(ctx, w, opts.FilesPath, entries)
	case TGZ:
		zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		// Header left zero: no name, no mtime, so output depends on content only.
		if err := zw.SetConcurrency(gzipBlockSize, 2*workers); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := writeTar(ctx, zw, opts.FilesPath, entries); err != nil {
			_ = zw.Close()
			return err
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("bundle: gzip: %w", err)
		}
		return nil
	case TarZst:
		// One stream encoding in the background (concurrency 2): on a
		// couple of cores it beats splitting into parallel jobs, which
		// copies more, and it compresses better. A fixed setting also keeps
		// the bytes the same on every machine.
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(2))
		if err != nil {
			return fmt.Errorf("bundle: zstd: %w", err)
		}
		if err := writeTar(ctx, zw, opts.FilesPath, entries); err != nil {
			_ = zw.Close()
			return err
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("bundle: zstd: %w", err)
		}
		return nil
	}
	return fmt.Errorf("bundle: unknown format %d", int(opts.Format))
}

// hashFile feeds the first size bytes of the file at name to w.
func hashFile(ctx context.Context, w io.Writer, name string, size int64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := copyFile(ctx, bw, name, size, make([]byte, 1<<20)); err != nil {
		return err
	}
	return bw.Flush()
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// ValidatePieceLength checks a piece length given by the user: a power of
// two from 16 KiB to 256 MiB, which every client accepts.
func ValidatePieceLength(n int64) error {
	if n < 16<<10 || n > 256<<20 || n&(n-1) != 0 {
		return fmt.Errorf("bundle: piece size %d: want a power of two from 16KiB to 256MiB", n)
	}
	return nil
}

// TrackerURL turns a tracker given as HOST:PORT into
// http://HOST:PORT/announce; a full http:// or https:// URL is checked and
// returned as is.
func TrackerURL(s string) (string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("%w URL %q: %w", ErrBadTracker, s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("%w URL %q: want http or https", ErrBadTracker, s)
		}
		if u.Hostname() == "" {
			return "", fmt.Errorf("%w URL %q: no host", ErrBadTracker, s)
		}
		if p := u.Port(); p != "" {
			if _, err := parsePort(p); err != nil {
				return "", fmt.Errorf("%w URL %q: %w", ErrBadTracker, s, err)
			}
		}
		return s, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: want HOST:PORT or an http(s) URL", ErrBadTracker, s)
	}
	if host == "" || strings.ContainsAny(host, "/?#@ \t") {
		return "", fmt.Errorf("%w %q: bad host", ErrBadTracker, s)
	}
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrBadTracker, s, err)
	}
	return "http://" + net.JoinHostPort(host, port) + "/announce", nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return n, nil
}
