package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
)

func TestSeedRefusesWrongData(t *testing.T) {
	_, art := makeArtifact(t, "s1", "http://127.0.0.1:1/announce")
	good, err := os.ReadFile(art.ArtifactPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0xff
	short := good[:len(good)-1]
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		data string
	}{
		{"one flipped byte", write("corrupt.tar", corrupt)},
		{"one byte short", write("short.tar", short)},
		{"a directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Seed(context.Background(), SeedConfig{Torrent: art.TorrentPath, Data: tt.data, ListenAddr: "127.0.0.1:0"})
			if !errors.Is(err, ErrDataMismatch) {
				t.Fatalf("Seed error = %v, want %v", err, ErrDataMismatch)
			}
		})
	}
	// Missing data names both places it looked.
	err = Seed(context.Background(), SeedConfig{Torrent: filepath.Join(dir, "x.torrent"), TempPath: dir})
	if err == nil {
		t.Fatal("Seed without data succeeded")
	}
}

func TestSeedFindsDataAndStopsAfterSeedTime(t *testing.T) {
	_, art := makeArtifact(t, "s2", "http://127.0.0.1:1/announce")
	tests := []struct {
		name string
		cfg  SeedConfig
	}{
		// bundle.Create writes the torrent next to the artifact.
		{"next to the torrent", SeedConfig{Torrent: art.TorrentPath}},
		{"in the temp path", SeedConfig{Torrent: copyTo(t, art.TorrentPath, t.TempDir()), TempPath: filepath.Dir(art.ArtifactPath)}},
		{"renamed data", SeedConfig{Torrent: art.TorrentPath, Data: copyTo(t, art.ArtifactPath, t.TempDir(), "other-name")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ListenAddr = "127.0.0.1:0"
			tt.cfg.SeedTime = 50 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := Seed(ctx, tt.cfg); err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatal("Seed did not stop after its seed time")
			}
		})
	}
}

func copyTo(t *testing.T, src, dir string, name ...string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if len(name) > 0 {
		dst = filepath.Join(dir, name[0])
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestSeedNoTracker: a seeder whose tracker never answers fails after its
// timeout, and one whose tracker answers seeds on past it.
func TestSeedNoTracker(t *testing.T) {
	_, art := makeArtifact(t, "s3", "http://127.0.0.1:1/announce")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Seed(ctx, SeedConfig{Torrent: art.TorrentPath, ListenAddr: "127.0.0.1:0", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrNoTracker) || !strings.Contains(err.Error(), "http://127.0.0.1:1/announce") {
		t.Fatalf("Seed with no tracker = %v, want ErrNoTracker naming the tracker", err)
	}

	announce := startTracker(t)
	_, art = makeArtifact(t, "s4", announce)
	err = Seed(ctx, SeedConfig{Torrent: art.TorrentPath, ListenAddr: "127.0.0.1:0", Timeout: 300 * time.Millisecond, SeedTime: time.Second})
	if err != nil {
		t.Fatalf("Seed with a tracker that answers: %v", err)
	}
}

// TestSeedStampedArtifactChanged: a seeder skips hashing an artifact that
// murder create stamped, but not one changed since, even with its size
// and mtime put back.
func TestSeedStampedArtifactChanged(t *testing.T) {
	_, art := makeArtifact(t, "s3", "http://127.0.0.1:1/announce")
	if !bundle.Stamped(art.ArtifactPath, art.InfoHash) {
		t.Fatal("bundle.Create left no stamp")
	}
	fi, err := os.Stat(art.ArtifactPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(art.ArtifactPath)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	time.Sleep(10 * time.Millisecond) // a tick of the file system's clock
	if err := os.WriteFile(art.ArtifactPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(art.ArtifactPath, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	err = Seed(context.Background(), SeedConfig{Torrent: art.TorrentPath, ListenAddr: "127.0.0.1:0"})
	if !errors.Is(err, ErrDataMismatch) {
		t.Fatalf("Seed error = %v, want %v", err, ErrDataMismatch)
	}
}
