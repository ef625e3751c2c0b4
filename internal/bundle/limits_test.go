package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zeroFile is a file of zeros in an archive built by buildZeros.
type zeroFile struct {
	name string
	size int64
}

const zeroChunk = 1 << 20

// buildZeros returns an archive in format f of files holding only zeros,
// followed by trailing zero bytes after the tar end. For TGZ and TarZst it
// never holds or compresses the expanded stream: each piece is its own
// gzip member (zstd frame), decoders read concatenated members as one
// stream, and a member of 1 MiB of zeros is compressed once and repeated.
// That is how a few hundred KiB expand to hundreds of MiB.
func buildZeros(t testing.TB, f Format, files []zeroFile, trailing int64) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	pack := func(data []byte) []byte {
		switch f {
		case TGZ:
			var buf bytes.Buffer
			zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := zw.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		case TarZst:
			return zw.EncodeAll(data, nil)
		}
		return data
	}
	chunk := pack(make([]byte, zeroChunk))
	var out []byte
	zeros := func(n int64) {
		for ; n >= zeroChunk; n -= zeroChunk {
			out = append(out, chunk...)
		}
		if n > 0 {
			out = append(out, pack(make([]byte, n))...)
		}
	}
	for _, zf := range files {
		var hb bytes.Buffer
		// WriteHeader puts the header blocks in hb at once; the data
		// follows from zeros, so the writer is dropped unclosed.
		h := &tar.Header{Name: zf.name, Typeflag: tar.TypeReg, Size: zf.size, Mode: 0o644, ModTime: treeTime}
		if err := tar.NewWriter(&hb).WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		out = append(out, pack(hb.Bytes())...)
		zeros(zf.size + (512-zf.size%512)%512)
	}
	zeros(1024 + trailing) // the two zero blocks that end a tar stream
	return out
}

// manyZeros is n files of size bytes each, named f000, f001 ...
func manyZeros(n int, size int64) []zeroFile {
	files := make([]zeroFile, n)
	for i := range files {
		files[i] = zeroFile{name: fmt.Sprintf("f%03d", i), size: size}
	}
	return files
}

// treeBytes sums the sizes of the regular files under root.
func treeBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	}))
	return n
}

func TestUnpackLimits(t *testing.T) {
	const mib = 1 << 20
	compressed := []Format{TGZ, TarZst}
	for _, tc := range []struct {
		name     string
		formats  []Format
		files    []zeroFile
		trailing int64
		lim      Limits
		wantErr  string // "": success; else ErrTooLarge with this text
		written  int64  // bytes of file contents found afterwards
		bomb     bool   // expands at least 100 times
	}{
		{
			name:    "bomb one entry",
			formats: compressed,
			files:   []zeroFile{{"zeros.bin", 512 * mib}},
			lim:     Limits{MaxBytes: 8 * mib},
			wantErr: `expands beyond the 8.0 MiB limit (entry "zeros.bin", 512.0 MiB)`,
			bomb:    true,
		},
		{
			name:    "bomb many entries",
			formats: compressed,
			files:   manyZeros(512, mib),
			lim:     Limits{MaxBytes: 8 * mib},
			wantErr: `expands beyond the 8.0 MiB limit (entry "f008", 1.0 MiB, after 8.0 MiB)`,
			written: 8 * mib,
			bomb:    true,
		},
		{
			name:    "declared sizes over limit",
			formats: []Format{Tar, TGZ},
			files:   []zeroFile{{"a", 600}, {"b", 600}},
			lim:     Limits{MaxBytes: 1000},
			wantErr: `expands beyond the 1000 B limit (entry "b", 600 B, after 600 B)`,
			written: 600,
		},
		{
			name:    "first entry over limit",
			formats: []Format{Tar},
			files:   []zeroFile{{"a", 1001}},
			lim:     Limits{MaxBytes: 1000},
			wantErr: `(entry "a", 1001 B)`,
		},
		{
			name:    "exactly at limit",
			formats: []Format{Tar, TarZst},
			files:   []zeroFile{{"a", 500}, {"b", 500}, {"empty", 0}},
			lim:     Limits{MaxBytes: 1000},
			written: 1000,
		},
		{
			name:    "too many entries",
			formats: []Format{Tar, TGZ},
			files:   manyZeros(5, 0),
			lim:     Limits{MaxEntries: 4},
			wantErr: `it has more than 4 entries (entry "f004")`,
		},
		{
			name:    "entries at limit",
			formats: []Format{Tar},
			files:   manyZeros(5, 1),
			lim:     Limits{MaxEntries: 5},
			written: 5,
		},
		{
			name:     "data after the tar end",
			formats:  compressed,
			files:    []zeroFile{{"a", 10}},
			trailing: maxTrailing + 512,
			lim:      Limits{MaxBytes: mib},
			wantErr:  "more than 16.0 MiB of data after the end of the tar stream",
			written:  10,
		},
		{
			name:     "record padding after the tar end",
			formats:  compressed,
			files:    []zeroFile{{"a", 10}},
			trailing: mib,
			lim:      Limits{MaxBytes: mib},
			written:  10,
		},
	} {
		for _, f := range tc.formats {
			t.Run(tc.name+"/"+f.String(), func(t *testing.T) {
				data := buildZeros(t, f, tc.files, tc.trailing)
				var expanded int64
				for _, zf := range tc.files {
					expanded += zf.size
				}
				if tc.bomb && int64(len(data))*100 > expanded {
					t.Fatalf("not a bomb: %d bytes expand to %d", len(data), expanded)
				}
				t.Logf("%d bytes expand to %d of file contents", len(data), expanded)
				dir := t.TempDir()
				err := UnpackLimited(context.Background(), bytes.NewReader(data), f, dir, tc.lim)
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("got %v, want success", err)
				case tc.wantErr != "" && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.wantErr)):
					t.Fatalf("got %v, want ErrTooLarge with %q", err, tc.wantErr)
				}
				if got := treeBytes(t, dir); got != tc.written {
					t.Errorf("wrote %d bytes of file contents, want %d", got, tc.written)
				}
			})
		}
	}
}

// TestPublishAfterBomb checks that a bomb leaves the destination as it was
// and no temporary directory, through Publish with UnpackLimited (as murder
// peer does) and through Extract.
func TestPublishAfterBomb(t *testing.T) {
	const limit = 4 << 20
	bomb := buildZeros(t, TGZ, manyZeros(256, 1<<20), 0)
	lim := Limits{MaxBytes: limit}
	for _, tc := range []struct {
		name    string
		old     bool // a destination with files exists
		replace bool
		extract bool // through Extract rather than Publish
	}{
		{name: "publish new"},
		{name: "publish over old", old: true, replace: true},
		{name: "extract new", extract: true},
		{name: "extract over old", old: true, replace: true, extract: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			var before map[string]string
			if tc.old {
				withOld(t, s.dest)
				before = snapshot(t, s.dest, nil)
			}
			var err error
			if tc.extract {
				p := filepath.Join(s.parent, "v1.tgz")
				must(t, os.WriteFile(p, bomb, 0o644))
				err = Extract(context.Background(), p, s.dest, ExtractOptions{Replace: tc.replace, Limits: lim})
			} else {
				err = Publish(s.dest, tc.replace, func(dir string) error {
					err := UnpackLimited(context.Background(), bytes.NewReader(bomb), TGZ, dir, lim)
					if n := treeBytes(t, dir); n != limit {
						t.Errorf("wrote %d bytes before refusing, want %d", n, limit)
					}
					return err
				})
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
			if tc.old {
				diffSnapshots(t, before, snapshot(t, s.dest, nil))
			} else if _, err := os.Lstat(s.dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("destination exists after a bomb: %v", err)
			}
			s.check(t)
		})
	}
}

func TestLongNames(t *testing.T) {
	long := strings.Repeat("d/", maxNameLen/2) + "f"
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"long name", []tarEntry{{name: long, typ: tar.TypeReg, body: "x"}}, "name of 4097 bytes"},
		{"long symlink target", []tarEntry{{name: "l", typ: tar.TypeSymlink, link: long}}, "link target of 4097 bytes"},
		{"long hard link target", []tarEntry{{name: "h", typ: tar.TypeLink, link: long}}, "link target of 4097 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Unpack(context.Background(), bytes.NewReader(buildTar(t, tc.entries)), Tar, t.TempDir())
			if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrUnsafeEntry with %q", err, tc.want)
			}
		})
	}
}
