package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/bytesize"
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

With --sign-key KEY (an OpenSSH private key without a passphrase) it also
writes TEMP/TAG.tgz.torrent.sig, the SSHSIG signature of the .torrent's
exact bytes in namespace "murder": what ssh-keygen -Y sign -n murder -f KEY
writes, which ssh-keygen -Y verify -n murder checks and murder peer
--allowed-signers requires (docs/trust.md).

The tag is one to 128 letters, digits, '.', '-' and '_', not starting with
'.'. An existing artifact, .torrent or signature is not overwritten unless
--force; nothing half-written is left behind. Beside an artifact it wrote,
create leaves a stamp (TEMP/TAG.tgz.murder-verified) so that murder seed
need not hash it again. It prints the artifact's path, size and piece
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
				n, err := bytesize.Parse(pieceSize)
				if err != nil {
					return usage("--piece-size: %w", err)
				}
				if n&(n-1) != 0 {
					return usage("--piece-size %s is %d bytes, not a power of two (1MB is 1,000,000 bytes, 1MiB 1,048,576)", pieceSize, n)
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
			if res.SignaturePath != "" {
				fmt.Fprintf(out, "signature: %s\n", res.SignaturePath)
			}
			fmt.Fprintf(out, "size: %d bytes (%s)\n", res.Size, bytesize.Format(res.Size))
			fmt.Fprintf(out, "pieces: %d of %s\n", res.NumPieces, bytesize.Format(res.PieceLength))
			fmt.Fprintf(out, "info hash: %s\n", res.InfoHash)
			if res.ExternalSymlinks > 0 {
				fmt.Fprintf(out, "external symlinks kept: %d (peers keep them too)\n", res.ExternalSymlinks)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Tag, "tag", "", "name of this deploy: the artifact is TEMP/TAG.tgz and peers extract into DESTINATION/TAG; letters, digits, '.', '-' and '_', not starting with '.' (required)")
	fl.StringVar(&opts.FilesPath, "files-path", "", "directory to pack (with --path-is-file: the one file to distribute) (required)")
	fl.StringArrayVar(&opts.Trackers, "tracker", nil, "tracker as HOST:PORT (becomes http://HOST:PORT/announce) or a full http(s) announce URL; repeat for more: the first is announce, all go into announce-list (required)")
	fl.StringVar(&opts.TempPath, "temp-path", "/tmp", "directory the artifact and the .torrent are written to; created when missing")
	fl.BoolVar(&opts.PathIsFile, "path-is-file", false, "distribute --files-path, a single file, as it is (copied to TEMP/NAME) instead of packing a directory; peers then place it without extracting")
	fl.StringVar(&format, "format", "tgz", "archive format: tgz (gzip, as Murder), tar.zst (zstd: faster, smaller) or tar (uncompressed)")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "glob pattern (as in path.Match) of names or paths relative to --files-path to leave out, in addition to .git*; repeat for more")
	fl.StringVar(&pieceSize, "piece-size", "", "piece length, a power of two from 16KiB to 256MiB (e.g. 1MiB, 512KiB; 1MB is 10^6 bytes, so not one); default: chosen from the artifact size")
	fl.BoolVar(&opts.Force, "force", false, "overwrite an existing artifact and .torrent of the same name")
	fl.StringVar(&opts.SignKey, "sign-key", "", "OpenSSH private key (no passphrase) that signs the .torrent into TEMP/TAG.tgz.torrent.sig, namespace murder (as ssh-keygen -Y sign -n murder)")
	fl.BoolVar(&opts.AllowExternalSymlinks, "allow-external-symlinks", false, "keep symlinks that point outside --files-path (absolute, or through ..), which are refused otherwise; the torrent then tells peers to keep them")
	return cmd
}
