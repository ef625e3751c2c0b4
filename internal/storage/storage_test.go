package storage

import (
	"bytes"
	"context"
	"crypto/sha1"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/murder-deploy/murder/internal/metainfo"
)

type tfile struct {
	path []string
	n    int64
	pad  bool
}

// makeInfo builds an Info over random contents for files and returns it
// with the torrent's whole byte space (pad files as zeros).
func makeInfo(t *testing.T, name string, pieceLen int64, files []tfile) (*metainfo.Info, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(len(files))))
	var data []byte
	info := &metainfo.Info{Name: name, PieceLength: pieceLen}
	for _, f := range files {
		b := make([]byte, f.n)
		if !f.pad {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
		data = append(data, b...)
		fl := metainfo.File{Length: f.n, Path: f.path}
		if f.pad {
			fl.Attr = "p"
		}
		info.Files = append(info.Files, fl)
	}
	if len(files) == 1 && files[0].path == nil {
		info.Length = files[0].n
		info.Files = nil
	}
	for off := int64(0); off < int64(len(data)); off += pieceLen {
		sum := sha1.Sum(data[off:min(off+pieceLen, int64(len(data)))])
		info.Pieces = append(info.Pieces, sum[:]...)
	}
	return info, data
}

func writeAll(t *testing.T, s *Storage, data []byte) {
	t.Helper()
	for k := range s.Info().NumPieces() {
		off := s.PieceOffset(k)
		if err := s.WritePiece(k, data[off:off+s.Info().PieceSize(k)]); err != nil {
			t.Fatal(err)
		}
	}
}

var layouts = []struct {
	name     string
	pieceLen int64
	files    []tfile
}{
	{"single", 1024, []tfile{{n: 10*1024 + 17}}},
	{"single exact", 512, []tfile{{n: 4096}}},
	{"multi", 1000, []tfile{{[]string{"a"}, 1500, false}, {[]string{"d", "b"}, 10, false}, {[]string{"d", "empty"}, 0, false}, {[]string{"c"}, 4000, false}}},
	{"pad files", 1024, []tfile{{[]string{"a"}, 1000, false}, {[]string{".pad", "24"}, 24, true}, {[]string{"b"}, 2048, false}, {[]string{".pad", "0"}, 0, true}, {[]string{"c"}, 5, false}}},
	{"pieces above one write", 3 << 20, []tfile{{n: 7<<20 + 3}}},
}

func TestReadWriteLayouts(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			info, data := makeInfo(t, "art", l.pieceLen, l.files)
			dir := t.TempDir()
			s, err := Open(info, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			writeAll(t, s, data)
			got := make([]byte, len(data))
			if _, err := s.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("read back differs from written data")
			}
			// Files on disk hold exactly their bytes; pad files do not exist.
			var off int64
			for _, f := range l.files {
				p := filepath.Join(append([]string{dir, "art"}, f.path...)...)
				if f.path == nil {
					p = filepath.Join(dir, "art")
				}
				b, err := os.ReadFile(p)
				if f.pad {
					if err == nil {
						t.Errorf("pad file %s was created", p)
					}
				} else if err != nil || !bytes.Equal(b, data[off:off+f.n]) {
					t.Errorf("file %s: %d bytes, err %v; want its %d bytes", p, len(b), err, f.n)
				}
				off += f.n
			}
			have, err := s.Verify(context.Background(), nil)
			if err != nil || !have.Full() {
				t.Fatalf("Verify: %d/%d pieces, %v", have.Count(), info.NumPieces(), err)
			}
		})
	}
}

func TestResumeAfterPartialWrites(t *testing.T) {
	l := layouts[3]
	info, data := makeInfo(t, "art", l.pieceLen, l.files)
	dir := t.TempDir()
	s, err := Open(info, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Write pieces 0 and 2 whole, half of piece 1.
	for _, k := range []int{0, 2} {
		off := s.PieceOffset(k)
		if err := s.WritePiece(k, data[off:off+info.PieceSize(k)]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.WriteAt(data[1024:1536], 1024); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(info, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	calls := 0
	have, err := s.Verify(context.Background(), func(done, total int) {
		calls++
		if total != info.NumPieces() || done != calls {
			t.Errorf("progress(%d, %d) at call %d", done, total, calls)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range info.NumPieces() {
		if want := k == 0 || k == 2; have.Has(k) != want {
			t.Errorf("piece %d: have %v, want %v", k, have.Has(k), want)
		}
	}
}

func TestCorruptPieceDetected(t *testing.T) {
	info, data := makeInfo(t, "art", 1024, []tfile{{n: 8192}})
	dir := t.TempDir()
	s, err := Open(info, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeAll(t, s, data)
	if _, err := s.WriteAt([]byte{data[3000] ^ 1}, 3000); err != nil {
		t.Fatal(err)
	}
	have, err := s.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if have.Has(2) || have.Count() != 7 {
		t.Fatalf("have %08b, want every piece but 2", have.Bytes())
	}
	bad := append([]byte(nil), data[:1024]...)
	bad[5] ^= 0x80
	if s.CheckPiece(0, bad) || !s.CheckPiece(0, data[:1024]) || s.CheckPiece(0, data[:1023]) {
		t.Fatal("CheckPiece does not tell good from bad data")
	}
}

func TestFreshFilesNotHashed(t *testing.T) {
	info, _ := makeInfo(t, "art", 1024, []tfile{{n: 4096}})
	dir := t.TempDir()
	s, err := Open(info, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(filepath.Join(dir, info.Name)); err != nil || fi.Size() != 4096 {
		t.Fatalf("file not created at full size: %v %v", fi, err)
	}
	have, err := s.Verify(context.Background(), nil)
	if err != nil || have.Count() != 0 {
		t.Fatalf("got %d pieces, %v; want none", have.Count(), err)
	}
}

func TestUnsafePaths(t *testing.T) {
	for _, p := range [][]string{{".."}, {"a", "..", ".."}, {"/etc"}, {"a/b"}, {""}} {
		info := &metainfo.Info{Name: "art", PieceLength: 16, Pieces: make([]byte, 20), Files: []metainfo.File{{Length: 1, Path: p}}}
		if _, err := Open(info, t.TempDir()); err == nil {
			t.Errorf("Open accepted path %q", p)
		}
	}
	info := &metainfo.Info{Name: "../x", PieceLength: 16, Pieces: make([]byte, 20), Length: 1}
	if _, err := Open(info, t.TempDir()); err == nil {
		t.Error("Open accepted name ../x")
	}
}

func TestBitfield(t *testing.T) {
	bf := NewBitfield(10)
	bf.Set(0)
	bf.Set(9)
	bf.Set(10) // out of range: ignored
	if got := bf.Bytes(); !bytes.Equal(got, []byte{0x80, 0x40}) || bf.Count() != 2 || bf.Full() {
		t.Fatalf("got %08b count %d", got, bf.Count())
	}
	bf.SetAll()
	if got := bf.Bytes(); !bytes.Equal(got, []byte{0xff, 0xc0}) || !bf.Full() {
		t.Fatalf("SetAll: got %08b", got)
	}
	bf.Clear(9)
	if bf.Has(9) || !bf.Has(8) || bf.Has(-1) {
		t.Fatal("Clear/Has wrong")
	}
	tests := []struct {
		in    []byte
		n     int
		count int
		err   bool
	}{
		{[]byte{0xff, 0xff}, 10, 10, false}, // spare bits set: accepted, cleared
		{[]byte{0xff}, 10, 0, true},
		{[]byte{0xff, 0, 0}, 10, 0, true},
		{[]byte{}, 0, 0, false},
	}
	for _, tt := range tests {
		bf, err := ParseBitfield(tt.in, tt.n)
		if (err != nil) != tt.err || (err == nil && bf.Count() != tt.count) {
			t.Errorf("ParseBitfield(%x, %d) = %v, %v", tt.in, tt.n, bf, err)
		}
	}
}

// TestBitfieldNextAnd compares NextAnd and Count with a scan piece by
// piece, on random bitfields of sizes around the 64-piece words.
func TestBitfieldNextAnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 63, 64, 65, 130, 2048, 2051} {
		for _, density := range []float64{0, 0.02, 0.5, 1} {
			a, b := NewBitfield(n), NewBitfield(n)
			for k := range n {
				if rng.Float64() < density {
					a.Set(k)
				}
				if rng.Float64() < 0.7 {
					b.Set(k)
				}
			}
			if k := n / 3; n > 0 && a.Has(k) {
				a.Clear(k)
				a.Clear(k) // twice: counted once
			}
			count := 0
			for k := range n {
				if a.Has(k) {
					count++
				}
			}
			if a.Count() != count {
				t.Fatalf("n=%d: Count() = %d, scan %d", n, a.Count(), count)
			}
			for from := -1; from <= n+1; from++ {
				want := -1
				for k := max(from, 0); from >= 0 && k < n; k++ {
					if a.Has(k) && b.Has(k) {
						want = k
						break
					}
				}
				if got := a.NextAnd(b, from); got != want {
					t.Fatalf("n=%d density %v: NextAnd(%d) = %d, want %d", n, density, from, got, want)
				}
			}
		}
	}
}

// FuzzParseBitfield checks that any accepted bitfield re-encodes to its
// input with the spare bits cleared.
func FuzzParseBitfield(f *testing.F) {
	f.Add([]byte{0xff, 0xc0}, 10)
	f.Add([]byte{0xff, 0xff}, 10)
	f.Add([]byte{}, 0)
	f.Add([]byte{0x80}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<20 {
			return
		}
		bf, err := ParseBitfield(b, n)
		if err != nil {
			return
		}
		out := bf.Bytes()
		if len(out) != len(b) {
			t.Fatalf("length %d, want %d", len(out), len(b))
		}
		count := 0
		for i := range n {
			if bf.Has(i) != (b[i/8]&(0x80>>(i%8)) != 0) {
				t.Fatalf("bit %d differs", i)
			}
			if bf.Has(i) {
				count++
			}
		}
		if count != bf.Count() || (count == n) != bf.Full() {
			t.Fatalf("count %d, Count %d, Full %v", count, bf.Count(), bf.Full())
		}
		for i := n; i < len(b)*8; i++ {
			if out[i/8]&(0x80>>(i%8)) != 0 {
				t.Fatalf("spare bit %d set", i)
			}
		}
	})
}

func TestClosed(t *testing.T) {
	l := layouts[3]
	info, data := makeInfo(t, "art", l.pieceLen, l.files)
	s, err := Open(info, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, data)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadPiece(0, nil); err == nil {
		t.Error("ReadPiece after Close succeeded; want an error, not zeros")
	}
	if err := s.WritePiece(0, data[:info.PieceLength]); err == nil {
		t.Error("WritePiece after Close succeeded")
	}
}
