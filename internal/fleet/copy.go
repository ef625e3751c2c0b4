package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Quote returns s as one single-quoted word for a POSIX shell.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sha256Cmd prints the SHA-256 of the file in $f, or nothing when it is
// missing; it works with GNU coreutils, BSD and busybox.
const sha256Cmd = `{ if command -v sha256sum >/dev/null 2>&1; then sha256sum "$f"; elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$f"; else openssl dgst -sha256 -r "$f"; fi; } 2>/dev/null | cut -c1-64`

// RemoteSHA256 returns the hex SHA-256 of a remote file, or "" when the file
// does not exist.
func (c *Conn) RemoteSHA256(ctx context.Context, file string) (string, error) {
	out, err := c.Output(ctx, "f="+Quote(file)+"; if [ -f \"$f\" ]; then "+sha256Cmd+"; fi")
	if err != nil {
		return "", fmt.Errorf("fleet: checksum %s: %w", file, err)
	}
	return strings.TrimSpace(out), nil
}

// CopyResult says what a copy did.
type CopyResult int

// What a copy did.
const (
	Copied    CopyResult = iota // the file was sent
	Unchanged                   // the remote file already had the same content
)

// LocalFile is a local file (or bytes) hashed once, to be sent to any
// number of hosts, at once if need be.
type LocalFile struct {
	r    io.ReaderAt
	size int64
	sum  string // hex SHA-256
	f    *os.File
}

// OpenLocalFile opens and hashes the file at path. Close it when done.
func OpenLocalFile(path string) (*LocalFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: copy: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fleet: copy: read %s: %w", path, err)
	}
	return &LocalFile{r: f, size: n, sum: hex.EncodeToString(h.Sum(nil)), f: f}, nil
}

// LocalBytes returns b as a LocalFile.
func LocalBytes(b []byte) *LocalFile {
	sum := sha256.Sum256(b)
	return &LocalFile{r: bytes.NewReader(b), size: int64(len(b)), sum: hex.EncodeToString(sum[:])}
}

// Size returns the file's length in bytes.
func (l *LocalFile) Size() int64 { return l.size }

// Close closes the file.
func (l *LocalFile) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// Put places a LocalFile on a host.
type Put struct {
	Src  *LocalFile
	Dst  string      // remote path
	Mode os.FileMode // permission bits of Dst
	// SkipSame leaves a Dst that already has Src's content alone, and
	// sends nothing.
	SkipSame bool
	// Quick lets SkipSame trust the stamp that Put leaves beside Dst
	// (Dst.murder-sum: its SHA-256 with its inode, size, mtime and ctime
	// in nanoseconds) while all four are unchanged, instead of hashing
	// Dst again. Any write to Dst changes its ctime, which nothing but
	// the kernel sets.
	Quick bool
	// Then, when set, is shell code run in the same session once Dst is
	// in place (d holds its path); its standard output goes to ThenOut
	// (nil discards it).
	Then    string
	ThenOut io.Writer
}

// Put copies p.Src to p.Dst in one session, which needs only a POSIX shell
// there: the host first says whether it already has the content (with
// SkipSame), and if not the bytes go through cat into a temporary file
// beside Dst, whose SHA-256 is checked before it is renamed over Dst, so
// Dst is either the old file or the complete new one.
func (c *Conn) Put(ctx context.Context, p Put) (CopyResult, error) {
	skip := "false"
	if p.SkipSame {
		skip = "true"
	}
	quick := "false"
	if p.Quick {
		quick = "true"
	}
	script := strings.Join([]string{
		"set -e",
		"d=" + Quote(p.Dst),
		// stamp prints SUM and the inode, size, mtime and ctime of $d, or
		// nothing where stat cannot give nanoseconds (GNU coreutils can).
		`stamp() { s=$(stat -c '%i %s %.9Y %.9Z' "$d" 2>/dev/null) || return 0; case "$s" in *[!0-9.\ ]*) ;; *.*' '*.*) echo "$1 $s";; esac; }`,
		`have=; pre=$(stamp ` + p.Src.sum + `)`,
		`if ` + quick + ` && [ -n "$pre" ] && [ -f "$d.murder-sum" ] && [ "$(cat "$d.murder-sum")" = "$pre" ]; then have=` + p.Src.sum + `; fi`,
		`if [ -z "$have" ]; then have=$(f="$d"; if [ -f "$f" ]; then ` + sha256Cmd + `; fi); fi`,
		// A stamp is written only for content just hashed or written.
		`if ` + skip + ` && [ "$have" = ` + p.Src.sum + ` ]; then echo same; if [ -n "$pre" ] && [ "$(stamp ` + p.Src.sum + `)" = "$pre" ]; then echo "$pre" > "$d.murder-sum" || true; fi; else`,
		`echo send`,
		"mkdir -p " + Quote(path.Dir(p.Dst)),
		`f="$d.murder-tmp.$$"`,
		`trap 'rm -f "$f"' EXIT`,
		`cat > "$f"`,
		fmt.Sprintf(`chmod %o "$f"`, p.Mode.Perm()),
		`got=$(` + sha256Cmd + `)`,
		`if [ "$got" != ` + p.Src.sum + ` ]; then echo "checksum mismatch after copy: got ${got:-nothing}, want ` + p.Src.sum + `" >&2; exit 1; fi`,
		`rm -f "$d.murder-sum"`,
		`mv -f "$f" "$d"`,
		`trap - EXIT`,
		`stamp ` + p.Src.sum + ` > "$d.murder-sum" || true`,
		`fi`,
		p.Then,
	}, "\n")
	res := Copied
	err := c.session(ctx, script, func(stdin io.WriteCloser, stdout io.Reader) {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		switch strings.TrimSpace(line) {
		case "same":
			res = Unchanged
		case "send":
			// A failed write shows in the session's exit status.
			io.Copy(stdin, io.NewSectionReader(p.Src.r, 0, p.Src.size))
		}
		stdin.Close()
		out := p.ThenOut
		if out == nil {
			out = io.Discard
		}
		io.Copy(out, br)
	})
	if err != nil {
		return 0, fmt.Errorf("fleet: copy to %s: %w", p.Dst, err)
	}
	return res, nil
}

// CopyFile copies the local file src to dst on the remote host with the
// given permission bits (see Put). With skipSame, a dst that already has
// src's content is left alone.
func (c *Conn) CopyFile(ctx context.Context, src, dst string, mode os.FileMode, skipSame bool) (CopyResult, error) {
	lf, err := OpenLocalFile(src)
	if err != nil {
		return 0, err
	}
	defer lf.Close()
	return c.Put(ctx, Put{Src: lf, Dst: dst, Mode: mode, SkipSame: skipSame})
}

// FetchFile copies the remote file src to the local file dst (temp file and
// rename), checking the remote SHA-256.
func (c *Conn) FetchFile(ctx context.Context, src, dst string) error {
	want, err := c.RemoteSHA256(ctx, src)
	if err != nil {
		return err
	}
	if want == "" {
		return fmt.Errorf("fleet: fetch %s: no such file on %s", src, c.Host)
	}
	tmp, err := os.CreateTemp(pathDir(dst), ".murder-fetch-*")
	if err != nil {
		return fmt.Errorf("fleet: fetch: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	err = c.Run(ctx, "cat "+Quote(src), nil, io.MultiWriter(tmp, h), nil)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fleet: fetch %s: %w", src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("fleet: fetch %s: checksum mismatch: got %s, want %s", src, got, want)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("fleet: fetch: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("fleet: fetch: %w", err)
	}
	return nil
}

func pathDir(p string) string {
	d := path.Dir(p)
	if d == "" {
		return "."
	}
	return d
}
