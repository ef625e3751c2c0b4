package bytesize

import (
	"bufio"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "65536", want: 65536},
		{in: "100B", want: 100},
		{in: "1kB", want: 1000},
		{in: "1KB", want: 1000},
		{in: "1MB", want: 1_000_000},
		{in: "1mb", want: 1_000_000},
		{in: "1.5GB", want: 1_500_000_000},
		{in: "2TB", want: 2_000_000_000_000},
		{in: "1KiB", want: 1 << 10},
		{in: "1MiB", want: 1 << 20},
		{in: "1mib", want: 1 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "512k", want: 512 << 10},
		{in: "4M", want: 4 << 20},
		{in: "1g", want: 1 << 30},
		{in: "0.5K", want: 512},
		{in: " 7 KiB ", want: 7 << 10},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1M", bad: true},
		{in: "12x", bad: true},
		{in: "1.2.3M", bad: true},
		{in: "0.0001", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "10 M B", bad: true},
		{in: "10MB/s", bad: true}, // a rate, not a size
		{in: "64Mbit", bad: true}, // a link speed, not a size
		{in: "1e9", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("Parse(%q) = %d, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse(%q) error %v does not wrap ErrSyntax", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "12345", want: 12345},
		{in: "10MB", want: 10_000_000},
		{in: "10MB/s", want: 10_000_000},
		{in: "50MiB", want: 50 << 20},
		{in: "50MiB/s", want: 50 << 20},
		{in: "100M", want: 100 << 20},
		{in: "800k", want: 800 << 10},
		{in: "1.5GB", want: 1_500_000_000},
		{in: "64Mbit", want: 8_000_000},
		{in: "1Gbit/s", want: 125_000_000},
		{in: "8kbit", want: 1000},
		{in: "", bad: true},
		{in: "MB", bad: true},
		{in: "-5MB", bad: true},
		{in: "10XB", bad: true},
		{in: "/s", bad: true},
		{in: "1bit", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %d, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseRate(%q) error %v does not wrap ErrSyntax", tt.in, err)
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

func TestFormat(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1_000_000, "976.6 KiB"},
		{1048575, "1.0 MiB"},
		{8 << 20, "8.0 MiB"},
		{13207024435, "12.3 GiB"},
		{1 << 62, "4.0 EiB"},
		{math.MaxInt64, "8.0 EiB"},
		{-2048, "-2.0 KiB"},
	}
	for _, tt := range tests {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestFormatRate(t *testing.T) {
	tests := []struct {
		bps  float64
		want string
	}{
		{0, "0 B/s"},
		{-1, "0 B/s"},
		{math.NaN(), "0 B/s"},
		{999.7, "999 B/s"},
		{52_428_800, "50.0 MiB/s"},
		{1e9, "953.7 MiB/s"},
	}
	for _, tt := range tests {
		if got := FormatRate(tt.bps); got != tt.want {
			t.Errorf("FormatRate(%v) = %q, want %q", tt.bps, got, tt.want)
		}
	}
}

func seeds(f *testing.F) {
	file, err := os.Open(filepath.Join("testdata", "values.txt"))
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
}

// FuzzParse checks that Parse never panics, never returns a negative
// count, accepts its own decimal rendering of what it parsed, and that
// Format of the result reads back within the rounding of one decimal.
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("Parse(%q) = %d, negative", s, v)
		}
		back, err := Parse(strconv.FormatInt(v, 10))
		if err != nil || back != v {
			t.Fatalf("Parse(%q) = %d, but re-parsing %d gives %d, %v", s, v, v, back, err)
		}
		if v > 7<<60 {
			return // Format rounds these up to 8.0 EiB, beyond int64
		}
		out := Format(v)
		again, err := Parse(strings.ReplaceAll(out, " ", ""))
		if err != nil {
			t.Fatalf("Parse(Format(%d) = %q): %v", v, out, err)
		}
		if d := math.Abs(float64(again - v)); d > 0.051*float64(v)+0.5 {
			t.Fatalf("Format(%d) = %q reads back as %d", v, out, again)
		}
	})
}

// FuzzParseRate checks that ParseRate never panics, never returns a
// negative rate, and accepts its own rendering of what it parsed.
func FuzzParseRate(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRate(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseRate(%q) = %d, negative", s, v)
		}
		back, err := ParseRate(strconv.FormatInt(v, 10) + "/s")
		if err != nil || back != v {
			t.Fatalf("ParseRate(%q) = %d, but re-parsing %d/s gives %d, %v", s, v, v, back, err)
		}
		if _, err := ParseRate(strings.ReplaceAll(FormatRate(float64(v)), " ", "")); err != nil && v <= 7<<60 {
			t.Fatalf("ParseRate(FormatRate(%d)): %v", v, err)
		}
	})
}
