package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Datacenter is one datacenter of a bed built with Config.Datacenters.
//
// Each datacenter has a bridge of its own and a /24 of its own (datacenter
// d, from 0, gets 198.19.d.0/24; its host j gets 198.19.d.(j+1)). The
// datacenters are joined by a router namespace, which each datacenter
// reaches over its WAN link: a veth pair between the datacenter's bridge
// and the router, at 198.19.d.254. Everything that enters or leaves a
// datacenter crosses its WAN link, and the router counts it (Bed.WAN).
type Datacenter struct {
	// Name names the datacenter; "" means "dc" and its number.
	Name string
	// Hosts is the number of hosts in the datacenter, 1 to 250.
	Hosts int
	// WAN caps the datacenter's WAN link each way, in bytes per second
	// (tc tbf on both ends of the link); 0 means no cap.
	WAN int64
}

// dc is a datacenter as the bed built it.
type dc struct {
	index  int
	name   string
	hosts  int
	first  int // index of its first host in the bed
	brNS   string
	wan    int64
	prefix netip.Prefix
}

const maxDatacenters, maxDatacenterHosts = 250, 250

func checkDatacenters(dcs []Datacenter) (int, error) {
	if len(dcs) > maxDatacenters {
		return 0, fmt.Errorf("testbed: %d datacenters is too many (at most %d)", len(dcs), maxDatacenters)
	}
	n := 0
	names := map[string]bool{}
	for i, d := range dcs {
		if d.Hosts < 1 || d.Hosts > maxDatacenterHosts {
			return 0, fmt.Errorf("testbed: datacenter %d has %d hosts, want 1 to %d", i, d.Hosts, maxDatacenterHosts)
		}
		if d.WAN < 0 {
			return 0, fmt.Errorf("testbed: datacenter %d has a negative WAN cap", i)
		}
		name := dcName(i, d.Name)
		if names[name] {
			return 0, fmt.Errorf("testbed: datacenter name %q used twice", name)
		}
		names[name] = true
		n += d.Hosts
	}
	return n, nil
}

func dcName(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("dc%d", i)
	}
	return name
}

// gateway is the router's address in the datacenter.
func (d *dc) gateway() netip.Addr {
	a := d.prefix.Addr().As4()
	a[3] = 254
	return netip.AddrFrom4(a)
}

// wanDev is the name of datacenter d's end of its WAN link in the router.
func wanDev(i int) string { return fmt.Sprintf("wan%d", i) }

// buildDatacenters builds a bridge per datacenter after the first (which
// uses the bed's bridge), the router, and the WAN links.
func (b *Bed) buildDatacenters(ctx context.Context, cfg []Datacenter) error {
	b.rtNS = b.name + "rt"
	if err := run(ctx, "ip", "netns", "add", b.rtNS); err != nil {
		return err
	}
	if err := batch(ctx, b.rtNS, "ip", []string{"link set lo up"}); err != nil {
		return err
	}
	if err := run(ctx, "ip", "netns", "exec", b.rtNS, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return err
	}
	first := 0
	for i, c := range cfg {
		d := &dc{index: i, name: dcName(i, c.Name), hosts: c.Hosts, first: first, wan: c.WAN,
			brNS:   b.brNS,
			prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 0}), 24)}
		first += c.Hosts
		if i > 0 {
			d.brNS = fmt.Sprintf("%sbr%d", b.name, i)
			if err := b.buildBridge(ctx, d.brNS); err != nil {
				return err
			}
		}
		b.dcs = append(b.dcs, d)
		// The link: "wan" on the datacenter's bridge, wanD in the router.
		if err := batch(ctx, d.brNS, "ip", []string{
			fmt.Sprintf("link add wan type veth peer name %s netns %s", wanDev(i), b.rtNS),
			"link set wan master br0 up",
		}); err != nil {
			return err
		}
		if err := batch(ctx, b.rtNS, "ip", []string{
			fmt.Sprintf("addr add %s/24 dev %s", d.gateway(), wanDev(i)),
			fmt.Sprintf("link set %s up", wanDev(i)),
		}); err != nil {
			return err
		}
		if c.WAN > 0 {
			if err := shape(ctx, b.rtNS, wanDev(i), c.WAN); err != nil {
				return err
			}
			if err := shape(ctx, d.brNS, "wan", c.WAN); err != nil {
				return err
			}
		}
	}
	return nil
}

// placeHost puts host h (its index set) in its datacenter.
func (b *Bed) placeHost(h *Host) {
	for _, d := range b.dcs {
		if h.index < d.first+d.hosts {
			a := d.prefix.Addr().As4()
			a[3] = byte(h.index - d.first + 1)
			h.addr, h.brNS, h.prefix, h.dc = netip.AddrFrom4(a), d.brNS, d.prefix, d
			return
		}
	}
}

// Datacenter returns the name of the host's datacenter, or "" in a bed
// without datacenters.
func (h *Host) Datacenter() string {
	if h.dc == nil {
		return ""
	}
	return h.dc.name
}

// DatacenterIndex returns the number of the host's datacenter, from 0; 0
// in a bed without datacenters.
func (h *Host) DatacenterIndex() int {
	if h.dc == nil {
		return 0
	}
	return h.dc.index
}

// Datacenters returns the number of datacenters (0 without them).
func (b *Bed) Datacenters() int { return len(b.dcs) }

// DatacenterName returns the name of datacenter i.
func (b *Bed) DatacenterName(i int) string { return b.dcs[i].name }

// DatacenterHosts returns the hosts of datacenter i.
func (b *Bed) DatacenterHosts(i int) []*Host {
	d := b.dcs[i]
	return b.Hosts()[d.first : d.first+d.hosts]
}

// DatacenterPrefix returns the address range of datacenter i.
func (b *Bed) DatacenterPrefix(i int) netip.Prefix { return b.dcs[i].prefix }

// Topology returns a topology file for murder's tracker (--topology) that
// maps each datacenter's range to its name.
func (b *Bed) Topology() string {
	var sb strings.Builder
	for _, d := range b.dcs {
		fmt.Fprintf(&sb, "[[datacenter]]\nname = %q\ncidrs = [%q]\n\n", d.name, d.prefix.String())
	}
	return sb.String()
}

// WANBytes is what crossed one datacenter's WAN link, counted by the
// router in bytes of Ethernet frames (headers included).
type WANBytes struct {
	// In entered the datacenter; Out left it.
	In, Out int64
}

// WAN returns the bytes that have crossed datacenter i's WAN link since
// the bed was built.
func (b *Bed) WAN(ctx context.Context, i int) (WANBytes, error) {
	if i < 0 || i >= len(b.dcs) {
		return WANBytes{}, fmt.Errorf("testbed: no datacenter %d", i)
	}
	out, err := exec.CommandContext(ctx, "ip", "-n", b.rtNS, "-s", "-j", "link", "show", "dev", wanDev(i)).Output()
	if err != nil {
		return WANBytes{}, fmt.Errorf("testbed: WAN counters of datacenter %d: %w", i, err)
	}
	var links []struct {
		Stats struct {
			RX struct{ Bytes int64 } `json:"rx"`
			TX struct{ Bytes int64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return WANBytes{}, fmt.Errorf("testbed: WAN counters of datacenter %d: unreadable ip output %q: %v", i, out, err)
	}
	// The router sends into the datacenter (tx) and receives what leaves
	// it (rx).
	return WANBytes{In: links[0].Stats.TX.Bytes, Out: links[0].Stats.RX.Bytes}, nil
}
