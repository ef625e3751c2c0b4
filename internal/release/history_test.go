package release

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseHistory(t *testing.T) {
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 := time.Date(2026, 1, 2, 4, 0, 0, 500, time.UTC)
	tests := []struct {
		name string
		in   string
		want []Entry
		bad  bool
	}{
		{"empty", "", nil, false},
		{"comments and blanks", "# header\n\n2026-01-02T03:04:05Z v1\n", []Entry{{"v1", t1}}, false},
		{"two", "2026-01-02T03:04:05Z v1\n2026-01-02T04:00:00.0000005Z v2\n", []Entry{{"v1", t1}, {"v2", t2}}, false},
		{"other zone", "2026-01-02T04:04:05+01:00 v1\n", []Entry{{"v1", t1}}, false},
		{"no newline at the end", "2026-01-02T03:04:05Z v1", []Entry{{"v1", t1}}, false},
		{"no tag", "2026-01-02T03:04:05Z\n", nil, true},
		{"bad time", "yesterday v1\n", nil, true},
		{"tag with a slash", "2026-01-02T03:04:05Z ../etc\n", nil, true},
		{"tag with a space", "2026-01-02T03:04:05Z v1 v2\n", nil, true},
		{"reserved tag", "2026-01-02T03:04:05Z current\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHistory([]byte(tt.in))
			if tt.bad {
				if !errors.Is(err, ErrBadHistory) {
					t.Fatalf("ParseHistory(%q) = %v, %v; want ErrBadHistory", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHistory(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseHistory(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseHistory checks that what ParseHistory accepts formats and
// parses back to the same entries.
func FuzzParseHistory(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "history"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("2026-01-02T03:04:05Z v1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHistory(data)
		if err != nil {
			return
		}
		back, err := ParseHistory(FormatHistory(h))
		if err != nil {
			t.Fatalf("ParseHistory(FormatHistory(%v)): %v", h, err)
		}
		if len(h) != len(back) {
			t.Fatalf("round trip: %v, then %v", h, back)
		}
		for i := range h {
			if h[i].Tag != back[i].Tag || !h[i].Time.Equal(back[i].Time) {
				t.Fatalf("round trip: %v, then %v", h, back)
			}
		}
	})
}
