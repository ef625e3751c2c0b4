package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/metainfo"
)

// showFile is one file of a torrent in `murder show --json`.
type showFile struct {
	Path   string `json:"path"`
	Length int64  `json:"length"`
	Pad    bool   `json:"pad,omitempty"`
}

// showOutput is what `murder show --json` prints.
type showOutput struct {
	Name         string        `json:"name"`
	InfoHash     metainfo.Hash `json:"info_hash"`
	Length       int64         `json:"length"`
	PieceLength  int64         `json:"piece_length"`
	Pieces       int           `json:"pieces"`
	Private      bool          `json:"private"`
	SHA256       string        `json:"sha256,omitempty"`
	Trackers     [][]string    `json:"trackers"`
	CreatedBy    string        `json:"created_by,omitempty"`
	CreationDate int64         `json:"creation_date,omitempty"`
	Comment      string        `json:"comment,omitempty"`
	Files        []showFile    `json:"files"`
	Signature    *showSig      `json:"signature,omitempty"`
}

// showSig is the signature beside a torrent, in `murder show --json`.
type showSig struct {
	Path        string `json:"path"`
	Principals  string `json:"principals,omitempty"`
	KeyType     string `json:"key_type,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Error       string `json:"error,omitempty"`
}

func newShowCmd() *cobra.Command {
	var asJSON bool
	var allowed, sigPath string
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print what a .torrent file holds",
		Long: `show prints what the .torrent FILE holds: its name, total length, piece
length and count, info hash (on a line starting with "info hash:"), the
whole-file sha256 when the torrent carries one (murder create adds it),
whether it is private, its trackers by tier, who made it and when, its
comment and, for a multi-file torrent, every file with its length (pad
files marked). It reads torrents made by any tool; the info hash is the one
other clients show.

With --json it prints one JSON object with the fields name, info_hash,
length, piece_length, pieces, private, sha256, trackers (a list of tiers),
created_by, creation_date (Unix seconds), comment and files (path, length,
pad); empty optional fields are left out.

When the torrent has a signature beside it (FILE.sig, or --signature), show
checks it and prints who signed: the principals of the allowed_signers line
that allows the key with --allowed-signers, else the key's fingerprint
(--json: signature with path, principals, key_type, fingerprint, error). A
signature that fails the check is printed with the reason and show exits
with status 1.

Names, paths, comments and trackers that hold control characters or
invalid UTF-8 are printed quoted, with escapes (as Go's strconv.Quote), so
that a torrent cannot drive the terminal.`,
		Example: `  murder show /tmp/v42.tgz.torrent
  murder show --json /tmp/v42.tgz.torrent | jq -r .info_hash`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("want one .torrent FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("show: %w", err)
			}
			m, err := metainfo.Parse(data)
			if err != nil {
				return fmt.Errorf("show: %s: %w", args[0], err)
			}
			o := showOutput{
				Name:         m.Info.Name,
				InfoHash:     m.InfoHash(),
				Length:       m.Info.TotalLength(),
				PieceLength:  m.Info.PieceLength,
				Pieces:       m.Info.NumPieces(),
				Private:      m.Info.Private,
				Trackers:     m.Trackers(),
				CreatedBy:    m.CreatedBy,
				CreationDate: m.CreationDate,
				Comment:      m.Comment,
				Files:        []showFile{},
			}
			if o.Trackers == nil {
				o.Trackers = [][]string{}
			}
			if m.Info.SHA256 != nil {
				o.SHA256 = hex.EncodeToString(m.Info.SHA256)
			}
			for _, f := range m.Info.FileList() {
				o.Files = append(o.Files, showFile{Path: strings.Join(f.Path, "/"), Length: f.Length, Pad: f.IsPad()})
			}
			var sigErr error
			sp := sigPath
			if sp == "" {
				sp = bundle.SignaturePath(args[0])
			}
			if _, err := os.Stat(sp); err == nil || sigPath != "" || allowed != "" {
				o.Signature = &showSig{Path: sp}
				signer, err := bundle.CheckSignature(data, sp, allowed)
				if err != nil {
					sigErr = fmt.Errorf("show: %w", err)
					o.Signature.Error = err.Error()
				} else {
					o.Signature.Principals, o.Signature.KeyType, o.Signature.Fingerprint = signer.Principals, signer.KeyType, signer.Fingerprint
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(o); err != nil {
					return err
				}
				return sigErr
			}
			fmt.Fprintf(out, "name: %s\n", printable(o.Name))
			fmt.Fprintf(out, "info hash: %s\n", o.InfoHash)
			fmt.Fprintf(out, "length: %d (%s)\n", o.Length, bytesize.Format(o.Length))
			fmt.Fprintf(out, "piece length: %d (%s)\n", o.PieceLength, bytesize.Format(o.PieceLength))
			fmt.Fprintf(out, "pieces: %d\n", o.Pieces)
			if o.SHA256 != "" {
				fmt.Fprintf(out, "sha256: %s\n", o.SHA256)
			}
			if o.Private {
				fmt.Fprintln(out, "private: yes")
			}
			for i, tier := range o.Trackers {
				fmt.Fprintf(out, "tracker tier %d: %s\n", i+1, printable(strings.Join(tier, " ")))
			}
			if o.CreatedBy != "" {
				fmt.Fprintf(out, "created by: %s\n", printable(o.CreatedBy))
			}
			if o.CreationDate != 0 {
				fmt.Fprintf(out, "creation date: %s\n", time.Unix(o.CreationDate, 0).UTC().Format(time.RFC3339))
			}
			if o.Comment != "" {
				fmt.Fprintf(out, "comment: %s\n", printable(o.Comment))
			}
			if m.Info.MultiFile() {
				fmt.Fprintf(out, "files: %d\n", len(o.Files))
				for _, f := range o.Files {
					pad := ""
					if f.Pad {
						pad = " (pad)"
					}
					fmt.Fprintf(out, "  %12d  %s%s\n", f.Length, printable(f.Path), pad)
				}
			}
			if sg := o.Signature; sg != nil {
				switch {
				case sg.Error != "":
					fmt.Fprintf(out, "signature: BAD: %s\n", printable(sg.Error))
				case sg.Principals != "":
					fmt.Fprintf(out, "signed by: %s (%s %s)\n", printable(sg.Principals), sg.KeyType, sg.Fingerprint)
				default:
					fmt.Fprintf(out, "signed by: %s %s (not checked against allowed signers: pass --allowed-signers)\n", sg.KeyType, sg.Fingerprint)
				}
			}
			return sigErr
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object instead of text (fields listed above)")
	cmd.Flags().StringVar(&allowed, "allowed-signers", "", "OpenSSH allowed_signers file: check the signature against it and print the signer's principals")
	cmd.Flags().StringVar(&sigPath, "signature", "", "the torrent's signature file (default: FILE.sig, when it exists)")
	return cmd
}

// printable returns s as it is when every character of it is printable,
// else quoted with escapes (strconv.Quote), so that names from a torrent
// never reach the terminal as control sequences.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
