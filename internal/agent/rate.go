package agent

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrBadRate is returned (wrapped) by ParseRate for malformed input.
var ErrBadRate = errors.New("agent: bad rate")

// rateUnits maps a lowercase unit suffix to its multiplier. Decimal units
// (KB, MB, GB, TB) are powers of 1000; binary units (KiB, MiB, ...) and the
// bare letters (K, M, G, T), as curl and aria2 read them, are powers of 1024.
// Kbit, Mbit and Gbit are link speeds in bits (decimal), converted to bytes.
var rateUnits = map[string]float64{
	"kbit": 1e3 / 8,
	"mbit": 1e6 / 8,
	"gbit": 1e9 / 8,
	"":     1,
	"b":    1,
	"k":    1 << 10,
	"kb":   1e3,
	"kib":  1 << 10,
	"m":    1 << 20,
	"mb":   1e6,
	"mib":  1 << 20,
	"g":    1 << 30,
	"gb":   1e9,
	"gib":  1 << 30,
	"t":    1 << 40,
	"tb":   1e12,
	"tib":  1 << 40,
}

// ParseRate parses a transfer rate in bytes per second such as "10MB"
// (10,000,000), "50MiB" (52,428,800), "100M" (104,857,600), "1.5GB", "800k",
// "64Mbit" (8,000,000) or "12345". Units are case-insensitive and may be followed by "/s".
// "0" means no limit.
func ParseRate(s string) (int64, error) {
	in := strings.TrimSpace(s)
	in = strings.TrimSuffix(strings.TrimSuffix(in, "/s"), "/S")
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" {
		return 0, fmt.Errorf("%w %q: want a number of bytes per second like 10MB, 50MiB or 100M", ErrBadRate, s)
	}
	mult, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%w %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB, GiB, K, M, G or Kbit, Mbit, Gbit)", ErrBadRate, s, in[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %q is not a number", ErrBadRate, s, num)
	}
	r := math.Round(v * mult)
	if r >= math.MaxInt64 {
		return 0, fmt.Errorf("%w %q: too large", ErrBadRate, s)
	}
	if v > 0 && r < 1 {
		return 0, fmt.Errorf("%w %q: below one byte per second", ErrBadRate, s)
	}
	return int64(r), nil
}

// FormatRate renders bytes per second for humans, e.g. "52.4 MB/s".
func FormatRate(bps float64) string {
	return FormatBytes(bps) + "/s"
}

// FormatBytes renders a byte count with a decimal unit, e.g. "1.07 GB".
func FormatBytes(n float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.3g %s", n, units[i])
}
