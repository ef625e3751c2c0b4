package fleet

import (
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

// CopyResult says what CopyFile did.
type CopyResult int

// What CopyFile did.
const (
	Copied    CopyResult = iota // the file was sent
	Unchanged                   // the remote file already had the same content
)

// CopyFile copies the local file src to dst on the remote host with the
// given permission bits. It needs only a POSIX shell there: the bytes go
// through `cat` into a temporary file beside dst, whose SHA-256 is checked
// before it is renamed over dst, so dst is either the old file or the
// complete new one. With skipSame, a dst that already has src's content is
// left alone.
func (c *Conn) CopyFile(ctx context.Context, src, dst string, mode os.FileMode, skipSame bool) (CopyResult, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("fleet: copy: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return 0, fmt.Errorf("fleet: copy: read %s: %w", src, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if skipSame {
		got, err := c.RemoteSHA256(ctx, dst)
		if err != nil {
			return 0, err
		}
		if got == sum {
			return Unchanged, nil
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("fleet: copy: %w", err)
	}
	script := strings.Join([]string{
		"set -e",
		"d=" + Quote(dst),
		"mkdir -p " + Quote(path.Dir(dst)),
		`f="$d.murder-tmp.$$"`,
		`trap 'rm -f "$f"' EXIT`,
		`cat > "$f"`,
		fmt.Sprintf(`chmod %o "$f"`, mode.Perm()),
		`got=$(` + sha256Cmd + `)`,
		`if [ "$got" != ` + sum + ` ]; then echo "checksum mismatch after copy: got ${got:-nothing}, want ` + sum + `" >&2; exit 1; fi`,
		`mv -f "$f" "$d"`,
		`trap - EXIT`,
	}, "\n")
	if err := c.Run(ctx, script, f, nil, nil); err != nil {
		return 0, fmt.Errorf("fleet: copy %s to %s: %w", src, dst, err)
	}
	return Copied, nil
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
