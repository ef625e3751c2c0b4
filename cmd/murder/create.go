package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/bundle"
)

func newCreateCmd() *cobra.Command {
	var (
		opts      bundle.CreateOptions
		format    string
		pieceSize string
	)
	cmd := &cobra.Command{
		Use:   "create --tag TAG --files-path PATH --tracker HOST:PORT [flags]",
		Short: "Pack a directory into TEMP/TAG.tgz and write its .torrent",
		Long: `create packs the directory given by --files-path into the artifact
TEMP/TAG.tgz (TEMP is --temp-path; TAG.tar.zst or TAG.tar with --format) and
writes its .torrent next to it, TEMP/TAG.tgz.torrent, whose single file is
the artifact. With --path-is-file the one file given by --files-path is the
artifact, copied as it is to TEMP/NAME (NAME is its base name), with
TEMP/NAME.torrent.

The archive is deterministic: entries in sorted order, owner 0 with no user
or group names, modes and mtimes kept, symlinks stored as links, empty
directories kept and .git* skipped, so the same tree always gives the same
bytes and the same info hash. Walking, packing, compressing (on all cores)
and hashing (SHA-1 per piece and SHA-256 of the whole artifact, which the
torrent carries as "sha256") happen in one streaming pass.

An existing artifact or .torrent is not overwritten unless --force; nothing
half-written is left behind. It prints the artifact's path, size and piece
count, and the info hash on a line starting with "info hash:".`,
		Example: `  murder create --tag v42 --files-path ./build --tracker tracker1:8998
  murder create --tag v42 --files-path ./build --tracker 10.0.0.1:8998 \
      --tracker 10.0.0.2:8998 --format tar.zst --exclude '*.log' --exclude 'tmp/*'
  murder create --tag db --files-path ./dump.sql --path-is-file --tracker t:8998`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			usage := func(format string, a ...any) error {
				return &exitError{code: 2, err: fmt.Errorf("create: "+format, a...)}
			}
			if !cmd.Flags().Changed("tag") {
				return usage("--tag is required")
			}
			if opts.FilesPath == "" {
				return usage("--files-path is required")
			}
			if len(opts.Trackers) == 0 {
				return usage("at least one --tracker HOST:PORT is required")
			}
			f, err := bundle.ParseFormat(format)
			if err != nil {
				return usage("--format: %w", err)
			}
			opts.Format = f
			if pieceSize != "" {
				n, err := parseSize(pieceSize)
				if err != nil {
					return usage("--piece-size: %w", err)
				}
				opts.PieceLength = n
			}
			opts.CreatedBy = "murder " + version
			res, err := bundle.Create(cmd.Context(), opts)
			if errors.Is(err, bundle.ErrBadTag) || errors.Is(err, bundle.ErrBadTracker) {
				return usage("%w", err)
			}
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "artifact: %s\n", res.ArtifactPath)
			fmt.Fprintf(out, "torrent: %s\n", res.TorrentPath)
			fmt.Fprintf(out, "size: %d bytes (%s)\n", res.Size, humanBytes(res.Size))
			fmt.Fprintf(out, "pieces: %d of %s\n", res.NumPieces, humanBytes(res.PieceLength))
			fmt.Fprintf(out, "info hash: %s\n", res.InfoHash)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Tag, "tag", "", "name of this deploy: the artifact is TEMP/TAG.tgz and peers extract into DESTINATION/TAG; no '/', '..' or NUL (required)")
	fl.StringVar(&opts.FilesPath, "files-path", "", "directory to pack (with --path-is-file: the one file to distribute) (required)")
	fl.StringArrayVar(&opts.Trackers, "tracker", nil, "tracker as HOST:PORT (becomes http://HOST:PORT/announce) or a full http(s) announce URL; repeat for more: the first is announce, all go into announce-list (required)")
	fl.StringVar(&opts.TempPath, "temp-path", "/tmp", "directory the artifact and the .torrent are written to; created when missing")
	fl.BoolVar(&opts.PathIsFile, "path-is-file", false, "distribute --files-path, a single file, as it is (copied to TEMP/NAME) instead of packing a directory; peers then place it without extracting")
	fl.StringVar(&format, "format", "tgz", "archive format: tgz (gzip, as Murder), tar.zst (zstd: faster, smaller) or tar (uncompressed)")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "glob pattern (as in path.Match) of names or paths relative to --files-path to leave out, in addition to .git*; repeat for more")
	fl.StringVar(&pieceSize, "piece-size", "", "piece length, a power of two from 16KiB to 256MiB (e.g. 1MiB, 512k); default: chosen from the artifact size")
	fl.BoolVar(&opts.Force, "force", false, "overwrite an existing artifact and .torrent of the same name")
	return cmd
}

// parseSize reads a byte count such as 1MiB, 512k, 4M or 65536. Units are
// binary (k = KiB = 1024) and case-insensitive.
func parseSize(s string) (int64, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		i++
	}
	num, unit := in[:i], strings.TrimSuffix(strings.TrimSuffix(in[i:], "b"), "i")
	mult := map[string]int64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
	if num == "" || mult == 0 || (unit == "" && in[i:] != "" && in[i:] != "b") {
		return 0, fmt.Errorf("bad size %q: want a number with an optional unit, like 1MiB or 512k", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// humanBytes renders n with a binary unit, e.g. "1.5 MiB".
func humanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
