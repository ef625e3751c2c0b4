package tracker

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTopologyPlaces(t *testing.T) {
	topo, err := LoadTopology("testdata/topology/good.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want Place
	}{
		{"10.1.0.1", Place{"east", ""}},
		{"10.1.12.7", Place{"east", "r12"}},
		{"10.9.13.1", Place{"east", "r13"}},
		{"10.9.14.1", Place{}},
		{"10.2.255.255", Place{"west", ""}},
		{"198.18.2.9", Place{"west", ""}},
		{"198.18.3.9", Place{}},
		{"2001:db8:1:ffff::1", Place{"east", ""}},
		{"2001:db8:2::1", Place{}},
		{"::ffff:10.1.12.1", Place{"east", "r12"}},
	}
	for _, tt := range tests {
		if got := topo.Place(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Place(%s) = %+v, want %+v", tt.addr, got, tt.want)
		}
	}
	if got := topo.Ranges(); got != 6 {
		t.Errorf("Ranges() = %d, want 6", got)
	}
	var none *Topology
	if got := none.Place(netip.MustParseAddr("10.1.0.1")); got.Known() {
		t.Errorf("nil topology placed an address: %+v", got)
	}
}

// TestParseTopologyErrors checks that each bad file in testdata/topology
// is refused with its line and a reason that names the problem.
func TestParseTopologyErrors(t *testing.T) {
	tests := []struct {
		file   string
		line   int
		reason string
	}{
		{"bad-syntax.toml", 3, "expected"},
		{"bad-cidr.toml", 3, "not an address range"},
		{"host-bits.toml", 3, "did you mean 10.1.0.0/16"},
		{"bad-name.toml", 2, "only letters"},
		{"duplicate-dc.toml", 5, `"east" is defined twice`},
		{"duplicate-range.toml", 5, `10.1.0.0/16 is given to "east" and to "west"`},
		{"unknown-key.toml", 3, `unknown key "datacenter.cidr"`},
		{"no-cidrs.toml", 1, "has no cidrs"},
		{"rack-no-name.toml", 4, "has no name"},
		{"wrong-type.toml", 3, "incompatible types"},
		{"mapped.toml", 3, "write IPv4 ranges as IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/topology", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseTopology(data)
			var te *TopologyError
			if !errors.As(err, &te) || !errors.Is(err, ErrTopology) {
				t.Fatalf("got %v, want a *TopologyError", err)
			}
			if te.Line != tt.line || !strings.Contains(te.Reason, tt.reason) {
				t.Errorf("got line %d %q, want line %d and %q", te.Line, te.Reason, tt.line, tt.reason)
			}
		})
	}
}

func TestParseTopologyEmpty(t *testing.T) {
	topo, err := LoadTopology("testdata/topology/empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := topo.Place(netip.MustParseAddr("10.1.0.1")); got.Known() {
		t.Errorf("empty topology placed an address: %+v", got)
	}
}

func TestParsePlace(t *testing.T) {
	tests := []struct {
		in      string
		want    Place
		wantErr bool
	}{
		{"", Place{}, false},
		{"east", Place{"east", ""}, false},
		{"east/r1", Place{"east", "r1"}, false},
		{"/r1", Place{}, true},
		{"east/", Place{}, true},
		{"east/r1/x", Place{}, true},
		{"e st", Place{}, true},
		{strings.Repeat("a", MaxPlaceName+1), Place{}, true},
	}
	for _, tt := range tests {
		got, err := ParsePlace(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParsePlace(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParsePlace(%q).String() = %q", tt.in, got.String())
		}
	}
}

// FuzzParseTopology checks that a parsed topology places the addresses of
// its own ranges, and that refusals are TopologyErrors.
func FuzzParseTopology(f *testing.F) {
	files, err := filepath.Glob("testdata/topology/*.toml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed topologies: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := ParseTopology(data)
		if err != nil {
			if !errors.Is(err, ErrTopology) {
				t.Fatalf("error %v is not a TopologyError", err)
			}
			return
		}
		// Oracle: the place of the longest range that holds the address,
		// found by looking at every range.
		longest := func(a netip.Addr) Place {
			best, bestBits := Place{}, -1
			for _, m := range topo.byBits {
				for p, pl := range m {
					if p.Contains(a) && p.Bits() > bestBits {
						best, bestBits = pl, p.Bits()
					}
				}
			}
			return best
		}
		for bits, m := range topo.byBits {
			for p, pl := range m {
				if p.Bits() != bits || !pl.Known() {
					t.Fatalf("range %s of %+v filed under /%d", p, pl, bits)
				}
				if got, want := topo.Place(p.Addr()), longest(p.Addr()); got != want {
					t.Fatalf("Place(%s) = %+v, want %+v", p.Addr(), got, want)
				}
			}
		}
	})
}
