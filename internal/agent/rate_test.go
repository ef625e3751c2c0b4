package agent

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "12345", want: 12345},
		{in: "100B", want: 100},
		{in: "10MB", want: 10_000_000},
		{in: "10mb", want: 10_000_000},
		{in: "50MiB", want: 50 << 20},
		{in: "100M", want: 100 << 20},
		{in: "800k", want: 800 << 10},
		{in: "1.5GB", want: 1_500_000_000},
		{in: "2GiB", want: 2 << 30},
		{in: "1T", want: 1 << 40},
		{in: "10MB/s", want: 10_000_000},
		{in: " 7 KiB ", want: 7 << 10},
		{in: "0.5K", want: 512},
		{in: "", bad: true},
		{in: "MB", bad: true},
		{in: "-5MB", bad: true},
		{in: "10XB", bad: true},
		{in: "1.2.3M", bad: true},
		{in: "0.0001", bad: true},
		{in: "99999999999999999999T", bad: true},
		{in: "10 M B", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %d, want error", tt.in, got)
				}
				if !errors.Is(err, ErrBadRate) {
					t.Fatalf("ParseRate(%q) error %v does not wrap ErrBadRate", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseRate(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1500, "1.5 kB"},
		{1 << 30, "1.07 GB"},
	}
	for _, tt := range tests {
		if got := FormatBytes(tt.in); got != tt.want {
			t.Errorf("FormatBytes(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseRate checks that ParseRate never panics, never returns a negative
// rate, and accepts its own decimal rendering of what it parsed.
func FuzzParseRate(f *testing.F) {
	file, err := os.Open(filepath.Join("testdata", "rates.txt"))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRate(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseRate(%q) = %d, negative", s, v)
		}
		back, err := ParseRate(strconv.FormatInt(v, 10))
		if err != nil || back != v {
			t.Fatalf("ParseRate(%q) = %d, but re-parsing %q gives %d, %v", s, v, strconv.FormatInt(v, 10), back, err)
		}
	})
}
