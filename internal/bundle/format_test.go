package bundle

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		ok   bool
	}{
		{"tgz", TGZ, true},
		{"tar.zst", TarZst, true},
		{"tar", Tar, true},
		{"zip", 0, false},
		{"", 0, false},
		{"TGZ", 0, false},
	} {
		got, err := ParseFormat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

func TestArtifactNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		tag    string
		ok     bool
	}{
		{"v42.tgz", TGZ, "v42", true},
		{"v42.tar.zst", TarZst, "v42", true},
		{"v42.tar", Tar, "v42", true},
		{"release.1.2.tgz", TGZ, "release.1.2", true},
		{"x.tar.tgz", TGZ, "x.tar", true},
		{"v42.tar.gz", 0, "", false},
		{"v42.zip", 0, "", false},
		{".tgz", 0, "", false},
		{"a..b.tgz", 0, "", false},
		{"raw.bin", 0, "", false},
	} {
		f, tag, ok := ParseArtifactName(tc.name)
		if f != tc.format || tag != tc.tag || ok != tc.ok {
			t.Errorf("ParseArtifactName(%q) = %v, %q, %v; want %v, %q, %v", tc.name, f, tag, ok, tc.format, tc.tag, tc.ok)
		}
		if ok && ArtifactName(tag, f) != tc.name {
			t.Errorf("ArtifactName(%q, %v) = %q, want %q", tag, f, ArtifactName(tag, f), tc.name)
		}
	}
}

func TestValidateTag(t *testing.T) {
	for _, tc := range []struct {
		tag string
		ok  bool
	}{
		{"v42", true},
		{"release-2024.05.06_1", true},
		{"", false},
		{"a/b", false},
		{"..", false},
		{"a..b", false},
		{".", false},
		{"a\x00b", false},
		{`a\b`, false},
		{"v42\n", false},
		{"v$(id)", false},
		{"a b", false},
		{"a;b", false},
		{"a*", false},
		{".hidden", false},
		{"v-1.2_3", true},
		{"é", false},
		{"\x1b[31m", false},
		{strings.Repeat("a", MaxTagLength), true},
		{strings.Repeat("a", MaxTagLength+1), false},
	} {
		err := ValidateTag(tc.tag)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTag(%q) = %v, want ok %v", tc.tag, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadTag) {
			t.Errorf("ValidateTag(%q) = %v, not ErrBadTag", tc.tag, err)
		}
	}
}

func TestTrackerURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"tracker1:8998", "http://tracker1:8998/announce"},
		{"10.0.0.1:8998", "http://10.0.0.1:8998/announce"},
		{"[::1]:8998", "http://[::1]:8998/announce"},
		{"http://t.example:80/announce", "http://t.example:80/announce"},
		{"https://t.example/a?key=1", "https://t.example/a?key=1"},
		{"tracker1", ""},
		{":8998", ""},
		{"host:0", ""},
		{"host:65536", ""},
		{"host:port", ""},
		{"ho st:1", ""},
		{"udp://t:1/announce", ""},
		{"http:///announce", ""},
		{"http://h:99999/announce", ""},
	} {
		got, err := TrackerURL(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrBadTracker) {
				t.Errorf("TrackerURL(%q) = %q, %v; want ErrBadTracker", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("TrackerURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestValidatePieceLength(t *testing.T) {
	for _, tc := range []struct {
		n  int64
		ok bool
	}{
		{16 << 10, true},
		{1 << 20, true},
		{256 << 20, true},
		{8 << 10, false},
		{512 << 20, false},
		{1000000, false},
		{0, false},
		{-1 << 20, false},
	} {
		if err := ValidatePieceLength(tc.n); (err == nil) != tc.ok {
			t.Errorf("ValidatePieceLength(%d) = %v, want ok %v", tc.n, err, tc.ok)
		}
	}
}

func TestMatcher(t *testing.T) {
	m, err := newMatcher([]string{"*.log", "build/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{".git", true},
		{"sub/.gitignore", true},
		{".github", true},
		{"git", false},
		{"a/.gitx/b", false}, // the walk never reaches b once .gitx is skipped
		{"app.log", true},
		{"logs/app.log", true},
		{"build/tmp", true},
		{"build/tmpx", false},
		{"src/main.go", false},
	} {
		if got := m.excluded(tc.rel); got != tc.want {
			t.Errorf("excluded(%q) = %v, want %v", tc.rel, got, tc.want)
		}
	}
}
