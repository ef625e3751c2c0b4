package metainfo

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/bencode"
)

func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		file      string
		hash      string
		name      string
		files     int
		pads      int
		total     int64
		private   bool
		trackers  int
		createdBy string
	}{
		{"mktorrent-multi.torrent", "b6a6d9df770c1fc2bb41adcdb49313cb172e8615", "tree", 2, 0, 100006, false, 2, "mktorrent 1.1"},
		{"mktorrent-single-private.torrent", "0555d7a7d18e809c12946be744f8e00f37327b9d", "single.bin", 1, 0, 70000, true, 1, "mktorrent 1.1"},
		{"transmission-multi.torrent", "2671aca0addeb29f46d6cc80acdbed6015d06c56", "tree", 2, 0, 100006, false, 1, ""},
		{"transmission-single.torrent", "6081a8745173012b20529aff665a02028028d45d", "single.bin", 1, 0, 70000, false, 1, ""},
		{"libtorrent-multi-pad.torrent", "3943e782c1bd14b80f2a49049cad2e7269253b61", "tree", 4, 2, 100000 + 14688 + 6 + 16378, false, 1, "libtorrent"},
		{"libtorrent-single.torrent", "83827ba1d740b192047cd76afc8c18f092f667c7", "single.bin", 1, 0, 70000, false, 1, "libtorrent"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.InfoHash().String(); got != tt.hash {
				t.Errorf("info hash = %s, want %s", got, tt.hash)
			}
			if m.Info.Name != tt.name {
				t.Errorf("name = %q, want %q", m.Info.Name, tt.name)
			}
			files := m.Info.FileList()
			pads := 0
			for _, f := range files {
				if f.IsPad() {
					pads++
				}
			}
			if len(files) != tt.files || pads != tt.pads {
				t.Errorf("files = %d (%d pad), want %d (%d pad)", len(files), pads, tt.files, tt.pads)
			}
			if got := m.Info.TotalLength(); got != tt.total {
				t.Errorf("total length = %d, want %d", got, tt.total)
			}
			if m.Info.Private != tt.private {
				t.Errorf("private = %v, want %v", m.Info.Private, tt.private)
			}
			if got := len(m.Trackers()); got != tt.trackers {
				t.Errorf("tracker tiers = %d, want %d", got, tt.trackers)
			}
			if tt.createdBy != "" && !strings.HasPrefix(m.CreatedBy, tt.createdBy) {
				t.Errorf("created by = %q, want prefix %q", m.CreatedBy, tt.createdBy)
			}
			if got := m.Info.PieceSize(m.Info.NumPieces() - 1); got <= 0 || got > m.Info.PieceLength {
				t.Errorf("last piece size = %d, want 1..%d", got, m.Info.PieceLength)
			}
			// Re-encoding keeps every byte, extra keys included.
			b, err := m.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := os.ReadFile(filepath.Join("testdata", tt.file))
			if !bytes.Equal(b, orig) {
				t.Errorf("Bytes() differs from the file:\n got %q\nwant %q", b, orig)
			}
		})
	}
}

// torrent builds a single-file torrent's bytes with info replaced by info.
func torrent(info map[string]any) []byte {
	b, err := bencode.Marshal(map[string]any{"announce": "http://127.0.0.1:8998/announce", "info": info})
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseRejects(t *testing.T) {
	pieces := strings.Repeat("x", 20)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not bencode", []byte("hello"), "invalid"},
		{"no info", []byte("d8:announce3:urle"), "no info"},
		{"unsorted keys", []byte("d4:infode8:announce0:e"), "out of order"},
		{"empty name", torrent(map[string]any{"name": "", "piece length": 16384, "pieces": pieces, "length": 10}), "empty name"},
		{"dotdot name", torrent(map[string]any{"name": "..", "piece length": 16384, "pieces": pieces, "length": 10}), "not allowed"},
		{"slash name", torrent(map[string]any{"name": "a/b", "piece length": 16384, "pieces": pieces, "length": 10}), "separator"},
		{"zero piece length", torrent(map[string]any{"name": "a", "piece length": 0, "pieces": pieces, "length": 10}), "piece length"},
		{"huge piece length", torrent(map[string]any{"name": "a", "piece length": 1 << 40, "pieces": pieces, "length": 10}), "piece length"},
		{"ragged pieces", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": "xyz", "length": 10}), "multiple of 20"},
		{"piece count", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces + pieces, "length": 10}), "piece hashes"},
		{"negative length", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": "", "length": -1}), "negative"},
		{"no length", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces}), "neither"},
		{"both", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "length": 1, "files": []any{}}), "both"},
		{"absolute path", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "files": []any{map[string]any{"length": 1, "path": []any{"", "etc"}}}}), "empty name"},
		{"traversal", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "files": []any{map[string]any{"length": 1, "path": []any{"..", "etc"}}}}), "not allowed"},
		{"empty path", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "files": []any{map[string]any{"length": 1, "path": []any{}}}}), "empty path"},
		{"duplicate file", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "files": []any{map[string]any{"length": 1, "path": []any{"x"}}, map[string]any{"length": 1, "path": []any{"x"}}}}), "twice"},
		{"overflow", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "files": []any{map[string]any{"length": int64(1) << 62, "path": []any{"x"}}, map[string]any{"length": int64(1) << 62, "path": []any{"y"}}}}), "bad length"},
		{"bad sha256", torrent(map[string]any{"name": "a", "piece length": 16384, "pieces": pieces, "length": 10, "sha256": "short"}), "sha256"},
		{"name type", torrent(map[string]any{"name": 5, "piece length": 16384, "pieces": pieces, "length": 10}), "cannot store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestNewAndWriteFile(t *testing.T) {
	info := Info{Name: "app.tgz", PieceLength: 32 << 10, Length: 40000, Pieces: bytes.Repeat([]byte{7}, 40), SHA256: bytes.Repeat([]byte{1}, 32)}
	m, err := New(info, []string{"http://127.0.0.1:8998/announce", "http://127.0.0.2:8998/announce"})
	if err != nil {
		t.Fatal(err)
	}
	m.CreatedBy = "murder test"
	dir := t.TempDir()
	path := filepath.Join(dir, "app.tgz.torrent")
	if err := WriteFile(path, m, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, m, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteFile without force = %v, want fs.ErrExist", err)
	}
	if err := WriteFile(path, m, true); err != nil {
		t.Fatalf("WriteFile with force: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.InfoHash() != m.InfoHash() {
		t.Errorf("info hash %s, want %s", got.InfoHash(), m.InfoHash())
	}
	if !reflect.DeepEqual(got.Info, info) {
		t.Errorf("info = %+v, want %+v", got.Info, info)
	}
	wantTiers := [][]string{{"http://127.0.0.1:8998/announce"}, {"http://127.0.0.2:8998/announce"}}
	if !reflect.DeepEqual(got.Trackers(), wantTiers) || got.Announce != wantTiers[0][0] {
		t.Errorf("trackers = %v (announce %q), want %v", got.Trackers(), got.Announce, wantTiers)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the torrent (temp files left behind?)", len(entries))
	}
	if _, err := New(Info{Name: "../x", PieceLength: 1, Length: 0}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with bad name = %v, want ErrInvalid", err)
	}
}

func TestChoosePieceLength(t *testing.T) {
	tests := []struct {
		total, want int64
	}{
		{0, 16 << 10},
		{1 << 20, 16 << 10},
		{32 << 20, 16 << 10},
		{64<<20 - 1, 16 << 10},
		{64 << 20, 32 << 10},
		{128 << 20, 64 << 10},
		{128<<20 - 1, 32 << 10},
		{200 << 20, 64 << 10},
		{1 << 30, 512 << 10},
		{2 << 30, 1 << 20},
		{8 << 30, 4 << 20},
		{100 << 30, 4 << 20},
	}
	for _, tt := range tests {
		if got := ChoosePieceLength(tt.total); got != tt.want {
			t.Errorf("ChoosePieceLength(%d) = %d, want %d", tt.total, got, tt.want)
		}
	}
}

func TestParseHash(t *testing.T) {
	h, err := ParseHash("b6a6d9df770c1fc2bb41adcdb49313cb172e8615")
	if err != nil || h.String() != "b6a6d9df770c1fc2bb41adcdb49313cb172e8615" {
		t.Fatalf("ParseHash round trip = %v, %v", h, err)
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("g", 40)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.torrent")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		b, err := m.Bytes()
		if err != nil {
			t.Fatalf("Bytes after Parse: %v", err)
		}
		m2, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if m2.InfoHash() != m.InfoHash() || !reflect.DeepEqual(m2.Info, m.Info) {
			t.Fatalf("round trip changed the torrent")
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("canonical input re-encoded differently")
		}
	})
}
