package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Topology maps address ranges to places: the tracker's --topology file.
// The most specific range that holds an address gives its place; an
// address in no range has an unknown place.
type Topology struct {
	// byBits maps a prefix length to the ranges of that length; lengths
	// lists the lengths present, longest first.
	byBits  map[int]map[netip.Prefix]Place
	lengths []int
	ranges  int
}

// Limits on a topology file, which is read whole.
const (
	maxTopologyBytes  = 4 << 20
	maxTopologyRanges = 100000
)

// ErrTopology is matched (with errors.Is) by every *TopologyError.
var ErrTopology = errors.New("tracker: bad topology")

// TopologyError is a topology file refused: the line (0 when unknown) and
// the reason.
type TopologyError struct {
	Line   int
	Reason string
}

func (e *TopologyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("tracker: topology line %d: %s", e.Line, e.Reason)
	}
	return "tracker: topology: " + e.Reason
}

// Is reports whether target is ErrTopology.
func (e *TopologyError) Is(target error) bool { return target == ErrTopology }

// topoName is a datacenter or rack name, checked as it is decoded so that
// a bad one is reported with its line.
type topoName string

func (n *topoName) UnmarshalText(b []byte) error {
	if err := CheckPlaceName("place", string(b)); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "tracker: "))
	}
	*n = topoName(b)
	return nil
}

// topoCIDR is an address range, checked as it is decoded.
type topoCIDR netip.Prefix

func (c *topoCIDR) UnmarshalText(b []byte) error {
	p, err := netip.ParsePrefix(string(b))
	if err != nil {
		return fmt.Errorf("%q is not an address range such as 10.1.0.0/16", b)
	}
	if p.Addr().Zone() != "" {
		return fmt.Errorf("%q: an address range cannot have a zone", b)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("%q: write IPv4 ranges as IPv4, such as 10.1.0.0/16", b)
	}
	if p != p.Masked() {
		return fmt.Errorf("%q has bits set past its /%d: did you mean %s?", b, p.Bits(), p.Masked())
	}
	*c = topoCIDR(p)
	return nil
}

type topoFile struct {
	Datacenter []struct {
		Name  topoName   `toml:"name"`
		CIDRs []topoCIDR `toml:"cidrs"`
		Rack  []struct {
			Name  topoName   `toml:"name"`
			CIDRs []topoCIDR `toml:"cidrs"`
		} `toml:"rack"`
	} `toml:"datacenter"`
}

// ParseTopology parses a topology file:
//
//	[[datacenter]]
//	name = "east"
//	cidrs = ["10.1.0.0/16", "2001:db8:1::/48"]
//	[[datacenter.rack]]     # racks are optional
//	name = "r12"
//	cidrs = ["10.1.12.0/24"]
//
// Names are 1 to MaxPlaceName letters, digits, '-', '_' or '.'; a
// datacenter's name and a rack's name within its datacenter are unique; a
// range belongs to one place only. A rack's ranges need not lie inside its
// datacenter's. Errors are *TopologyError with the line when it is known.
func ParseTopology(data []byte) (*Topology, error) {
	if len(data) > maxTopologyBytes {
		return nil, &TopologyError{Reason: fmt.Sprintf("file larger than %d bytes", maxTopologyBytes)}
	}
	var f topoFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &TopologyError{Line: pe.Position.Line, Reason: pe.Message}
		}
		// The decoder's type errors read "toml: line N (last key K): why".
		te := &TopologyError{Reason: strings.TrimPrefix(err.Error(), "toml: ")}
		if _, scanErr := fmt.Sscanf(te.Reason, "line %d", &te.Line); scanErr == nil {
			if _, why, ok := strings.Cut(te.Reason, "): "); ok {
				te.Reason = why
			}
		}
		return nil, te
	}
	if un := md.Undecoded(); len(un) > 0 {
		k := un[0]
		return nil, &TopologyError{Line: keyLine(data, k[len(k)-1]),
			Reason: fmt.Sprintf("unknown key %q (want datacenter, datacenter.name, datacenter.cidrs, datacenter.rack, and name and cidrs in a rack)", k.String())}
	}
	dcLines, rackLines := headerLines(data)
	t := &Topology{byBits: make(map[int]map[netip.Prefix]Place)}
	owner := make(map[netip.Prefix]Place)
	add := func(line int, p netip.Prefix, pl Place) error {
		if prev, dup := owner[p]; dup {
			return &TopologyError{Line: line, Reason: fmt.Sprintf("range %s is given to %q and to %q", p, prev.String(), pl.String())}
		}
		if t.ranges++; t.ranges > maxTopologyRanges {
			return &TopologyError{Line: line, Reason: fmt.Sprintf("more than %d ranges", maxTopologyRanges)}
		}
		owner[p] = pl
		m := t.byBits[p.Bits()]
		if m == nil {
			m = make(map[netip.Prefix]Place)
			t.byBits[p.Bits()] = m
			t.lengths = append(t.lengths, p.Bits())
		}
		m[p] = pl
		return nil
	}
	seenDC := make(map[topoName]bool)
	rackNo := 0
	for i, dc := range f.Datacenter {
		line := at(dcLines, i)
		if dc.Name == "" {
			return nil, &TopologyError{Line: line, Reason: "datacenter has no name"}
		}
		if seenDC[dc.Name] {
			return nil, &TopologyError{Line: line, Reason: fmt.Sprintf("datacenter %q is defined twice", dc.Name)}
		}
		seenDC[dc.Name] = true
		n := len(dc.CIDRs)
		for _, c := range dc.CIDRs {
			if err := add(line, netip.Prefix(c), Place{Datacenter: string(dc.Name)}); err != nil {
				return nil, err
			}
		}
		seenRack := make(map[topoName]bool)
		for _, r := range dc.Rack {
			rline := at(rackLines, rackNo)
			rackNo++
			if r.Name == "" {
				return nil, &TopologyError{Line: rline, Reason: fmt.Sprintf("a rack of datacenter %q has no name", dc.Name)}
			}
			if seenRack[r.Name] {
				return nil, &TopologyError{Line: rline, Reason: fmt.Sprintf("rack %q of datacenter %q is defined twice", r.Name, dc.Name)}
			}
			seenRack[r.Name] = true
			if len(r.CIDRs) == 0 {
				return nil, &TopologyError{Line: rline, Reason: fmt.Sprintf("rack %q of datacenter %q has no cidrs", r.Name, dc.Name)}
			}
			n += len(r.CIDRs)
			for _, c := range r.CIDRs {
				if err := add(rline, netip.Prefix(c), Place{Datacenter: string(dc.Name), Rack: string(r.Name)}); err != nil {
					return nil, err
				}
			}
		}
		if n == 0 {
			return nil, &TopologyError{Line: line, Reason: fmt.Sprintf("datacenter %q has no cidrs", dc.Name)}
		}
	}
	slices.SortFunc(t.lengths, func(a, b int) int { return b - a })
	return t, nil
}

// LoadTopology reads and parses the topology file at path.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tracker: topology: %w", err)
	}
	t, err := ParseTopology(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Place returns the place of addr: that of the most specific range that
// holds it, or the unknown place.
func (t *Topology) Place(addr netip.Addr) Place {
	if t == nil {
		return Place{}
	}
	addr = addr.Unmap()
	for _, bits := range t.lengths {
		if bits > addr.BitLen() {
			continue
		}
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		if pl, ok := t.byBits[bits][p]; ok {
			return pl
		}
	}
	return Place{}
}

// Ranges returns how many address ranges t holds.
func (t *Topology) Ranges() int {
	if t == nil {
		return 0
	}
	return t.ranges
}

func at(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

// headerLines returns the lines of the [[datacenter]] and
// [[datacenter.rack]] headers, in order, so that errors found after
// decoding can name a line.
func headerLines(data []byte) (dcs, racks []int) {
	for i, l := range strings.Split(string(data), "\n") {
		l, _, _ = strings.Cut(l, "#")
		l = strings.Join(strings.Fields(l), "")
		switch l {
		case "[[datacenter]]":
			dcs = append(dcs, i+1)
		case "[[datacenter.rack]]":
			racks = append(racks, i+1)
		}
	}
	return dcs, racks
}

// keyLine returns the first line that sets key, or 0.
func keyLine(data []byte, key string) int {
	for i, l := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), key)
		if ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
			return i + 1
		}
	}
	return 0
}
