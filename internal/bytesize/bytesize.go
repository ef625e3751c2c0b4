// Package bytesize parses and prints byte counts and transfer rates, the
// one place where murder decides what a unit means.
//
// Input takes units by their meaning: SI ones are powers of 1000 (kB, MB,
// GB, TB: 1MB is 1,000,000 bytes), IEC ones powers of 1024 (KiB, MiB, GiB,
// TiB: 1MiB is 1,048,576 bytes), and the bare letters K, M, G, T are read
// as IEC, as curl and aria2 read them. Units are case-insensitive. Rates
// may end in "/s" and may be link speeds in bits (kbit, Mbit, Gbit, SI).
//
// Output is always IEC: "1.5 MiB", "12.3 MiB/s".
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by the errors of Parse and ParseRate.
var ErrSyntax = errors.New("bytesize: bad value")

// units maps a lowercase unit to its multiplier in bytes.
var units = map[string]float64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kb":  1e3,
	"kib": 1 << 10,
	"m":   1 << 20,
	"mb":  1e6,
	"mib": 1 << 20,
	"g":   1 << 30,
	"gb":  1e9,
	"gib": 1 << 30,
	"t":   1 << 40,
	"tb":  1e12,
	"tib": 1 << 40,
	"p":   1 << 50,
	"pb":  1e15,
	"pib": 1 << 50,
	"e":   1 << 60,
	"eb":  1e18,
	"eib": 1 << 60,
}

// bitUnits are link speeds, SI bits per second, converted to bytes.
var bitUnits = map[string]float64{
	"kbit": 1e3 / 8,
	"mbit": 1e6 / 8,
	"gbit": 1e9 / 8,
}

// Parse reads a byte count such as "65536", "1MiB" (1,048,576), "1MB"
// (1,000,000), "512k" (524,288) or "1.5GB". The result is rounded to a
// whole byte; a non-zero count below one byte is an error.
func Parse(s string) (int64, error) {
	return parse(s, false)
}

// ParseRate reads a rate in bytes per second such as "10MB" (10,000,000),
// "50MiB/s" (52,428,800), "100M" (104,857,600) or "64Mbit" (8,000,000).
// "0" is a rate of zero, which murder's flags read as no limit.
func ParseRate(s string) (int64, error) {
	return parse(s, true)
}

func parse(s string, rate bool) (int64, error) {
	what, example := "a byte count", "65536, 512KiB, 1MiB or 1MB"
	in := strings.TrimSpace(s)
	if rate {
		what, example = "bytes per second", "10MB, 50MiB, 100M or 64Mbit"
		in = strings.TrimSuffix(strings.TrimSuffix(in, "/s"), "/S")
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" {
		return 0, fmt.Errorf("%w %q: want %s like %s", ErrSyntax, s, what, example)
	}
	mult, ok := units[unit]
	if !ok && rate {
		mult, ok = bitUnits[unit]
	}
	if !ok {
		known := "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, K, M, G, T and the like"
		if rate {
			known += ", kbit, Mbit, Gbit"
		}
		return 0, fmt.Errorf("%w %q: unknown unit %q (use %s)", ErrSyntax, s, in[i:], known)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %q is not a number", ErrSyntax, s, num)
	}
	r := math.Round(v * mult)
	if r >= math.MaxInt64 {
		return 0, fmt.Errorf("%w %q: too large", ErrSyntax, s)
	}
	if v > 0 && r < 1 {
		return 0, fmt.Errorf("%w %q: below one byte", ErrSyntax, s)
	}
	return int64(r), nil
}

// Format prints n bytes in IEC units with one decimal: "512 B", "1.0 KiB",
// "12.3 GiB".
func Format(n int64) string {
	if n < 0 {
		return "-" + Format(-n)
	}
	return format(float64(n))
}

// FormatRate prints a rate in bytes per second in IEC units: "0 B/s",
// "52.4 MiB/s".
func FormatRate(bps float64) string {
	if bps < 0 || math.IsNaN(bps) {
		bps = 0
	}
	return format(bps) + "/s"
}

func format(v float64) string {
	if v < 1024 {
		return fmt.Sprintf("%.0f B", math.Floor(v))
	}
	names := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for v >= 1024 && i < len(names)-1 {
		v /= 1024
		i++
	}
	// 1023.96 KiB would print as "1024.0 KiB".
	if v >= 1023.95 && i < len(names)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, names[i])
}
