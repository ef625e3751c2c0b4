package bundle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format is an artifact's container format. The zero value is TGZ, the
// format Murder used.
type Format int

// The artifact formats murder writes and reads.
const (
	TGZ    Format = iota // tar compressed with gzip, TAG.tgz
	TarZst               // tar compressed with zstd, TAG.tar.zst
	Tar                  // plain tar, TAG.tar
)

var formatExt = [...]string{TGZ: ".tgz", TarZst: ".tar.zst", Tar: ".tar"}
var formatName = [...]string{TGZ: "tgz", TarZst: "tar.zst", Tar: "tar"}

// String returns the format's name as given to --format: "tgz", "tar.zst"
// or "tar".
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatName) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatName[f]
}

// Ext returns the file name suffix of the format, with its leading dot.
func (f Format) Ext() string {
	if f < 0 || int(f) >= len(formatExt) {
		return ""
	}
	return formatExt[f]
}

// ParseFormat maps a format name ("tgz", "tar.zst" or "tar") to a Format.
func ParseFormat(s string) (Format, error) {
	for f, name := range formatName {
		if s == name {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("bundle: unknown format %q (want tgz, tar.zst or tar)", s)
}

// ArtifactName returns the file name of the artifact for tag in format f,
// for example "v42.tgz".
func ArtifactName(tag string, f Format) string {
	return tag + f.Ext()
}

// ParseArtifactName splits an artifact's file name (no directory) into its
// format and tag: "v42.tar.zst" gives (TarZst, "v42"). ok is false when the
// name has none of the suffixes .tgz, .tar.zst or .tar, or the tag before
// the suffix is not a valid tag.
func ParseArtifactName(name string) (f Format, tag string, ok bool) {
	// Longest suffix first: ".tar.zst" must not be read as tag "x.tar" + ".zst".
	for _, f := range []Format{TarZst, TGZ, Tar} {
		if t, found := strings.CutSuffix(name, f.Ext()); found {
			if ValidateTag(t) != nil {
				return 0, "", false
			}
			return f, t, true
		}
	}
	return 0, "", false
}

// ErrBadTag is returned (wrapped) for a tag that cannot name an artifact.
var ErrBadTag = errors.New("bundle: bad tag")

// MaxTagLength is the longest tag: room is left in a file name (at most
// 255 bytes) for what murder adds around it, such as
// ".TAG.murder-partial-" and a 40-character info hash.
const MaxTagLength = 128

// ValidateTag is murder's one tag rule, which create, peer and the fleet
// tasks all apply: one to MaxTagLength letters, digits, '.', '-' and '_',
// not starting with '.' and without "..". A tag names files and
// directories and appears in remote shell commands and logs, so nothing
// else is let in.
func ValidateTag(tag string) error {
	const hint = "use letters, digits, '.', '-' and '_'"
	switch {
	case tag == "":
		return fmt.Errorf("%w: the tag is empty", ErrBadTag)
	case len(tag) > MaxTagLength:
		return fmt.Errorf("%w %.40q...: %d bytes, longer than %d", ErrBadTag, tag, len(tag), MaxTagLength)
	case tag[0] == '.':
		return fmt.Errorf("%w %q: it starts with '.' (%s)", ErrBadTag, tag, hint)
	case strings.Contains(tag, ".."):
		return fmt.Errorf("%w %q: it contains '..' (%s)", ErrBadTag, tag, hint)
	}
	for _, c := range []byte(tag) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			continue
		}
		what := strconv.QuoteRune(rune(c))
		switch {
		case c == 0:
			what = "a NUL byte"
		case c >= 0x80:
			what = fmt.Sprintf("byte %#x", c)
		}
		return fmt.Errorf("%w %q: it contains %s (%s)", ErrBadTag, tag, what, hint)
	}
	return nil
}
