package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/testenv"
)

func TestStatfsUsable(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name string
		st   unix.Statfs_t
		want int64
	}{
		{"64 MiB reserve on a small file system", unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: gib / 4096, Bavail: gib / 4096 / 2}, gib/2 - 64<<20},
		{"1% reserve on a large file system", unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000 * gib / 4096, Bavail: 200 * gib / 4096}, 200*gib - 10*gib},
		{"counts in fragments, not Bsize", unix.Statfs_t{Bsize: 1 << 20, Frsize: 1024, Blocks: 1 << 20, Bavail: 1 << 19}, 512<<20 - 64<<20},
		{"Bsize when Frsize is zero", unix.Statfs_t{Bsize: 4096, Blocks: gib / 4096, Bavail: gib / 4096}, gib - 64<<20},
		{"less free than the reserve", unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: gib / 4096, Bavail: 1000}, 0},
		{"full", unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: gib / 4096}, 0},
		{"overflow saturates", unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: math.MaxUint64, Bavail: math.MaxUint64}, math.MaxInt64 - math.MaxInt64/100},
	} {
		if got := usable(statfsBytes(&tc.st)); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestDefaultLimitFromStatfs checks the zero Limits against a statfs done
// here. Other writers change the free space, so it retries (a bounded
// number of times) until the count is the same before and after.
func TestDefaultLimitFromStatfs(t *testing.T) {
	dir := t.TempDir()
	for try := 0; ; try++ {
		var before, after unix.Statfs_t
		must(t, unix.Statfs(dir, &before))
		b, entries, err := Limits{}.resolve(dir)
		must(t, err)
		must(t, unix.Statfs(dir, &after))
		if before.Bavail != after.Bavail {
			if try == 20 {
				t.Skip("free space kept changing during the test")
			}
			continue
		}
		unit := after.Frsize
		if unit == 0 {
			unit = after.Bsize
		}
		avail, size := int64(after.Bavail)*unit, int64(after.Blocks)*unit
		want := max(avail-max(size/100, 64<<20), 0)
		if b.max != want || b.free != avail {
			t.Errorf("default byte bound %d (%d free), want %d from statfs (%d free of %d)", b.max, b.free, want, avail, size)
		}
		if entries != DefaultMaxEntries {
			t.Errorf("default entry bound %d, want %d", entries, DefaultMaxEntries)
		}
		if b.at != mountPoint(dir) {
			t.Errorf("budget names %s, want %s", b.at, mountPoint(dir))
		}
		break
	}
	// Explicit limits win.
	b, entries, err := Limits{MaxBytes: 5, MaxEntries: 7}.resolve(dir)
	if err != nil || b.max != 5 || b.at != "" || entries != 7 {
		t.Errorf("explicit limits resolve to %+v, %d, %v; want 5 bytes, 7 entries", b, entries, err)
	}
}

// TestUnpackDefaultRefusesHuge checks that plain Unpack, with no limits
// given, refuses an entry larger than the whole file system before
// writing any of it, and says where the space ran out.
func TestUnpackDefaultRefusesHuge(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	size := int64(st.Blocks)*st.Bsize + 1
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Size: size, Mode: 0o644}))
	buf.Write(make([]byte, 4096)) // the data stops short; it is never read
	err := Unpack(context.Background(), &buf, Tar, dir)
	t.Log(err)
	want := " free on " + mountPoint(dir) + " less a "
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want ErrTooLarge with %q", err, want)
	}
	want = ` reserve (entry "huge", ` + bytesize.Format(size) + ")"
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want ErrTooLarge with %q", err, want)
	}
	if names := testenv.ListDir(t, dir); len(names) != 0 {
		t.Errorf("left %v in the directory", names)
	}
}

func TestMountPoint(t *testing.T) {
	dev := func(p string) uint64 {
		var st unix.Stat_t
		must(t, unix.Stat(p, &st))
		return st.Dev
	}
	dir := t.TempDir()
	mp := mountPoint(dir)
	if rel, err := filepath.Rel(mp, dir); err != nil || !filepath.IsLocal(rel) && rel != "." {
		t.Errorf("mountPoint(%s) = %s, not above it", dir, mp)
	}
	if dev(mp) != dev(dir) {
		t.Errorf("mountPoint(%s) = %s, on another device", dir, mp)
	}
	if mp != "/" && dev(filepath.Dir(mp)) == dev(mp) {
		t.Errorf("mountPoint(%s) = %s, but its parent is on the same device", dir, mp)
	}
	if got := mountPoint("/"); got != "/" {
		t.Errorf(`mountPoint("/") = %s`, got)
	}
	if _, err := os.Stat("/proc/self"); err == nil && dev("/proc") != dev("/") {
		if got := mountPoint("/proc/self"); got != "/proc" {
			t.Errorf(`mountPoint("/proc/self") = %s, want /proc`, got)
		}
	}
}
