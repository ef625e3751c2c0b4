package bundle

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/testenv"
)

var allFormats = []Format{TGZ, TarZst, Tar}

func create(t *testing.T, opts CreateOptions) *CreateResult {
	t.Helper()
	if opts.TempPath == "" {
		opts.TempPath = t.TempDir()
	}
	if opts.Tag == "" {
		opts.Tag = "v1"
	}
	if opts.Trackers == nil {
		opts.Trackers = []string{"127.0.0.1:8998"}
	}
	res, err := Create(context.Background(), opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return res
}

// checkArtifact verifies the torrent against the artifact's bytes.
func checkArtifact(t *testing.T, res *CreateResult) {
	t.Helper()
	data, err := os.ReadFile(res.ArtifactPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metainfo.Load(res.TorrentPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.InfoHash() != res.InfoHash {
		t.Errorf("info hash on disk %s, result %s", m.InfoHash(), res.InfoHash)
	}
	info := m.Info
	if info.Length != int64(len(data)) || res.Size != int64(len(data)) {
		t.Errorf("length %d, result %d, file %d", info.Length, res.Size, len(data))
	}
	if want := sha256.Sum256(data); !bytes.Equal(info.SHA256, want[:]) || res.SHA256 != want {
		t.Errorf("sha256 %x, want %x", info.SHA256, want)
	}
	if info.Name != filepath.Base(res.ArtifactPath) {
		t.Errorf("name %q, want %q", info.Name, filepath.Base(res.ArtifactPath))
	}
	if info.NumPieces() != res.NumPieces {
		t.Errorf("%d pieces, result says %d", info.NumPieces(), res.NumPieces)
	}
	for k := 0; k < info.NumPieces(); k++ {
		off := int64(k) * info.PieceLength
		if sha1.Sum(data[off:off+info.PieceSize(k)]) != info.PieceHash(k) {
			t.Fatalf("piece %d hash mismatch", k)
		}
	}
}

func TestCreateFormats(t *testing.T) {
	src := makeTree(t)
	want := snapshot(t, src, isGitOrLog)
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			res := create(t, CreateOptions{FilesPath: src, Format: f, Exclude: []string{"*.log"}})
			if got := filepath.Base(res.ArtifactPath); got != "v1"+f.Ext() {
				t.Errorf("artifact %s, want v1%s", got, f.Ext())
			}
			if res.TorrentPath != res.ArtifactPath+".torrent" {
				t.Errorf("torrent %s", res.TorrentPath)
			}
			if want := metainfo.ChoosePieceLength(res.Size); res.PieceLength != want {
				t.Errorf("piece length %d, want %d for %d bytes", res.PieceLength, want, res.Size)
			}
			checkArtifact(t, res)
			dest := filepath.Join(t.TempDir(), "out")
			if err := Extract(context.Background(), res.ArtifactPath, dest, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			diffSnapshots(t, want, snapshot(t, dest, nil))
		})
	}
}

func TestSystemTarExtracts(t *testing.T) {
	testenv.Require(t, "tar")
	src := makeTree(t)
	want := snapshot(t, src, isGitOrLog)
	for _, tc := range []struct {
		f    Format
		args []string
		tool string
	}{
		{TGZ, []string{"-xzf"}, "gzip"},
		{TarZst, []string{"--zstd", "-xf"}, "zstd"},
		{Tar, []string{"-xf"}, "tar"},
	} {
		t.Run(tc.f.String(), func(t *testing.T) {
			testenv.Require(t, tc.tool)
			res := create(t, CreateOptions{FilesPath: src, Format: tc.f, Exclude: []string{"*.log"}})
			dest := t.TempDir()
			args := append(append([]string{}, tc.args...), res.ArtifactPath, "-C", dest)
			if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
				t.Fatalf("tar %v: %v\n%s", args, err, out)
			}
			diffSnapshots(t, want, snapshot(t, dest, nil))
		})
	}
}

func TestCreateDeterministic(t *testing.T) {
	src := makeTree(t)
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			var first []byte
			var firstHash metainfo.Hash
			// Different core counts must not change a byte.
			for i, procs := range []int{1, 4, 2} {
				old := runtime.GOMAXPROCS(procs)
				res := create(t, CreateOptions{FilesPath: src, Format: f})
				runtime.GOMAXPROCS(old)
				data, err := os.ReadFile(res.ArtifactPath)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first, firstHash = data, res.InfoHash
					continue
				}
				if !bytes.Equal(data, first) {
					t.Errorf("GOMAXPROCS=%d: artifact differs (%d vs %d bytes)", procs, len(data), len(first))
				}
				if res.InfoHash != firstHash {
					t.Errorf("GOMAXPROCS=%d: info hash %s, want %s", procs, res.InfoHash, firstHash)
				}
			}
		})
	}
}

// TestCreateLargeStream crosses piece and compression block boundaries
// many times, and checks that a small artifact from a large tree still
// gets the piece length its own size calls for.
func TestCreateLargeStream(t *testing.T) {
	src := t.TempDir()
	// 40 MiB that compresses very well (more than one zstd job), plus 3 MiB
	// that does not.
	must(t, os.WriteFile(filepath.Join(src, "zeros"), make([]byte, 40<<20), 0o644))
	noise := make([]byte, 3<<20)
	x := uint64(1)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	must(t, os.WriteFile(filepath.Join(src, "noise"), noise, 0o644))
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			old := runtime.GOMAXPROCS(1)
			one := create(t, CreateOptions{FilesPath: src, Format: f})
			runtime.GOMAXPROCS(4)
			res := create(t, CreateOptions{FilesPath: src, Format: f})
			runtime.GOMAXPROCS(old)
			if want := metainfo.ChoosePieceLength(res.Size); res.PieceLength != want {
				t.Errorf("piece length %d, want %d for %d bytes", res.PieceLength, want, res.Size)
			}
			if one.SHA256 != res.SHA256 {
				t.Errorf("GOMAXPROCS 1 and 4 give different artifacts (%d and %d bytes)", one.Size, res.Size)
			}
			checkArtifact(t, res)
		})
	}
	t.Run("piece-size", func(t *testing.T) {
		res := create(t, CreateOptions{FilesPath: src, Format: TGZ, PieceLength: 16 << 10})
		if res.PieceLength != 16<<10 {
			t.Errorf("piece length %d, want %d", res.PieceLength, 16<<10)
		}
		checkArtifact(t, res)
	})
}

func TestCreatePathIsFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "dump.sql")
	data := bytes.Repeat([]byte("insert into t values (1);\n"), 50000)
	must(t, os.WriteFile(src, data, 0o600))

	res := create(t, CreateOptions{FilesPath: src, PathIsFile: true})
	if filepath.Base(res.ArtifactPath) != "dump.sql" {
		t.Errorf("artifact %s, want dump.sql", res.ArtifactPath)
	}
	got, err := os.ReadFile(res.ArtifactPath)
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Error("artifact is not a copy of the file")
	}
	checkArtifact(t, res)

	// A file already in the temp path is hashed where it is.
	res2 := create(t, CreateOptions{FilesPath: src, PathIsFile: true, TempPath: dir})
	if res2.ArtifactPath != src || res2.InfoHash != res.InfoHash {
		t.Errorf("in place: artifact %s hash %s, want %s %s", res2.ArtifactPath, res2.InfoHash, src, res.InfoHash)
	}
	checkArtifact(t, res2)
}

func TestCreateErrors(t *testing.T) {
	src := makeTree(t)
	file := filepath.Join(src, "README")
	existing := t.TempDir()
	must(t, os.WriteFile(filepath.Join(existing, "v1.tgz.torrent"), []byte("x"), 0o644))
	for _, tc := range []struct {
		name string
		opts CreateOptions
		want string
		is   error
	}{
		{"empty tag", CreateOptions{FilesPath: src}, "tag is empty", ErrBadTag},
		{"slash tag", CreateOptions{Tag: "a/b", FilesPath: src}, "'/'", ErrBadTag},
		{"dotdot tag", CreateOptions{Tag: "a..b", FilesPath: src}, "'..'", ErrBadTag},
		{"nul tag", CreateOptions{Tag: "a\x00", FilesPath: src}, "NUL", ErrBadTag},
		{"missing path", CreateOptions{Tag: "v1", FilesPath: filepath.Join(src, "nope")}, "no such file", os.ErrNotExist},
		{"no path", CreateOptions{Tag: "v1"}, "no files path", nil},
		{"file without flag", CreateOptions{Tag: "v1", FilesPath: file}, "not a directory", nil},
		{"dir with flag", CreateOptions{Tag: "v1", FilesPath: src, PathIsFile: true}, "not a regular file", nil},
		{"bad tracker", CreateOptions{Tag: "v1", FilesPath: src, Trackers: []string{"nohost"}}, "bad tracker", nil},
		{"bad tracker port", CreateOptions{Tag: "v1", FilesPath: src, Trackers: []string{"h:99999"}}, "bad port", nil},
		{"udp tracker", CreateOptions{Tag: "v1", FilesPath: src, Trackers: []string{"udp://h:1/announce"}}, "want http or https", nil},
		{"piece size", CreateOptions{Tag: "v1", FilesPath: src, PieceLength: 1000}, "power of two", nil},
		{"exclude", CreateOptions{Tag: "v1", FilesPath: src, Exclude: []string{"[a"}}, "bad exclude", nil},
		{"exists", CreateOptions{Tag: "v1", FilesPath: src, TempPath: existing}, "--force", ErrExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.TempPath == "" {
				tc.opts.TempPath = filepath.Join(t.TempDir(), "temp")
			}
			_, err := Create(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want errors.Is %v", err, tc.is)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if names, _ := os.ReadDir(tc.opts.TempPath); tc.opts.TempPath != existing && len(names) != 0 {
				t.Errorf("temp path holds %v after a failure", names)
			}
		})
	}
}

func TestCreateForce(t *testing.T) {
	src := makeTree(t)
	temp := t.TempDir()
	first := create(t, CreateOptions{FilesPath: src, TempPath: temp})
	must(t, os.WriteFile(filepath.Join(src, "README"), []byte("changed\n"), 0o644))
	second := create(t, CreateOptions{FilesPath: src, TempPath: temp, Force: true})
	if first.InfoHash == second.InfoHash {
		t.Error("a changed tree gave the same info hash")
	}
	checkArtifact(t, second)
	want := []string{"v1.tgz", "v1.tgz" + StampSuffix, "v1.tgz.torrent"}
	if names := testenv.ListDir(t, temp); !slices.Equal(names, want) {
		t.Errorf("temp path holds %v, want %v: the artifact, its stamp and its torrent", names, want)
	}
}

func TestCreateCancelled(t *testing.T) {
	src := makeTree(t)
	temp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Create(ctx, CreateOptions{Tag: "v1", FilesPath: src, TempPath: temp})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if names := testenv.ListDir(t, temp); len(names) != 0 {
		t.Errorf("temp path holds %v after cancel", names)
	}
}

func TestTorrentLoadsInOtherClients(t *testing.T) {
	src := makeTree(t)
	res := create(t, CreateOptions{FilesPath: src, Trackers: []string{"127.0.0.1:8998", "http://127.0.0.2:8998/announce"}})
	t.Run("libtorrent", func(t *testing.T) {
		testenv.Require(t, "libtorrent")
		out, err := exec.Command(testenv.PythonLT, "-c", "import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hash())", res.TorrentPath).CombinedOutput()
		if err != nil {
			t.Fatalf("libtorrent: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != res.InfoHash.String() {
			t.Errorf("libtorrent info hash %s, want %s", got, res.InfoHash)
		}
	})
	t.Run("transmission-show", func(t *testing.T) {
		testenv.Require(t, "transmission-show")
		out, err := exec.Command("transmission-show", res.TorrentPath).CombinedOutput()
		if err != nil {
			t.Fatalf("transmission-show: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Hash: "+res.InfoHash.String()) {
			t.Errorf("transmission-show does not report hash %s:\n%s", res.InfoHash, out)
		}
	})
}

// TestCreateGuessMissed packs a tree that compresses far better than
// guessed, so the piece length first guessed is wrong and the artifact
// must be hashed again with the right one.
func TestCreateGuessMissed(t *testing.T) {
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "sparse-zeros"))
	must(t, err)
	must(t, f.Truncate(384<<20)) // sparse: costs no disk
	must(t, f.Close())
	for _, format := range []Format{TGZ, TarZst} {
		t.Run(format.String(), func(t *testing.T) {
			res := create(t, CreateOptions{FilesPath: src, Format: format})
			guessed := metainfo.ChoosePieceLength(guessSize(384<<20, CreateOptions{Format: format}))
			if want := metainfo.ChoosePieceLength(res.Size); res.PieceLength != want || want == guessed {
				t.Errorf("piece length %d, want %d for %d bytes (guessed %d)", res.PieceLength, want, res.Size, guessed)
			}
			checkArtifact(t, res)
		})
	}
}

// TestCreateExternalSymlinks: symlinks that leave the tree (absolute, by
// "..", or through another link) are refused before packing and listed;
// --allow-external-symlinks packs them and marks the torrent, and an
// extraction told so keeps them while a plain one still refuses them.
func TestCreateExternalSymlinks(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs":        "/etc/hostname",
		"up":         "../outside",
		"sub/inside": "f",
		"sub/up":     "..",
		"chain":      "sub/up/../x",
	} {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Create(context.Background(), CreateOptions{Tag: "v1", FilesPath: src, TempPath: t.TempDir(), Trackers: []string{"127.0.0.1:8998"}})
	if !errors.Is(err, ErrExternalSymlinks) {
		t.Fatalf("Create with external symlinks = %v, want ErrExternalSymlinks", err)
	}
	for _, want := range []string{"abs -> /etc/hostname", "up -> ../outside", "chain -> sub/up/../x", "--allow-external-symlinks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "sub/inside") || strings.Contains(err.Error(), "sub/up ->") {
		t.Errorf("error lists a link that stays inside: %v", err)
	}

	res := create(t, CreateOptions{FilesPath: src, AllowExternalSymlinks: true})
	if res.ExternalSymlinks != 3 || !res.MetaInfo.Info.ExternalSymlinks {
		t.Fatalf("external symlinks %d, torrent flag %v; want 3 and true", res.ExternalSymlinks, res.MetaInfo.Info.ExternalSymlinks)
	}
	back, err := metainfo.Load(res.TorrentPath)
	if err != nil || !back.Info.ExternalSymlinks {
		t.Fatalf("the flag does not survive the file: %v, %v", back, err)
	}
	unpack := func(external bool) (string, error) {
		f, err := os.Open(res.ArtifactPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dir := t.TempDir()
		return dir, UnpackLimited(context.Background(), f, TGZ, dir, Limits{ExternalSymlinks: external})
	}
	if _, err := unpack(false); !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("plain extraction of external symlinks = %v, want ErrUnsafeEntry", err)
	}
	dir, err := unpack(true)
	if err != nil {
		t.Fatalf("extraction keeping external symlinks: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "abs")); err != nil || target != "/etc/hostname" {
		t.Errorf("abs -> %q, %v", target, err)
	}
}
