package cidr

import (
	"errors"
	"flag"
	"net/netip"
	"testing"
)

func TestAllows(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		addr    string
		want    bool
	}{
		{"empty allows all", nil, "203.0.113.9", true},
		{"empty allows v6", nil, "2001:db8::1", true},
		{"inside prefix", []string{"198.18.0.0/15"}, "198.19.4.2", true},
		{"outside prefix", []string{"198.18.0.0/15"}, "198.20.0.1", false},
		{"single address", []string{"127.0.0.2"}, "127.0.0.2", true},
		{"single address, neighbour", []string{"127.0.0.2"}, "127.0.0.3", false},
		{"mapped address", []string{"10.0.0.0/8"}, "::ffff:10.1.2.3", true},
		{"mapped prefix", []string{"::ffff:10.0.0.0/104"}, "10.1.2.3", true},
		{"v6 prefix", []string{"2001:db8::/32"}, "2001:db8:1::5", true},
		{"v6 prefix, v4 address", []string{"2001:db8::/32"}, "10.0.0.1", false},
		{"second of several", []string{"10.0.0.0/8", "192.168.0.0/16"}, "192.168.3.4", true},
		{"comma-separated", []string{"10.0.0.0/8,192.168.0.0/16"}, "192.168.3.4", true},
		{"host bits masked", []string{"10.1.2.3/8"}, "10.200.0.1", true},
		{"zone ignored", []string{"fe80::/10"}, "fe80::1%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.entries...)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Allows(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Allows(%s) over %v: got %v, want %v", tt.addr, tt.entries, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, e := range []string{"", "10.0.0.0/33", "example.com", "10.0.0", "10.0.0.0/8,", "fe80::1%eth0", "1.2.3.4:80", "/8"} {
		t.Run(e, func(t *testing.T) {
			_, err := Parse(e)
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q): got %v, want ErrSyntax", e, err)
			}
		})
	}
}

func TestFlag(t *testing.T) {
	var l List
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&l, "allow-from", "")
	if err := fs.Parse([]string{"--allow-from", "10.0.0.0/8", "--allow-from", "127.0.0.1,::1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "10.0.0.0/8,127.0.0.1/32,::1/128"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	back, err := Parse(l.Strings()...)
	if err != nil || back.String() != l.String() {
		t.Errorf("Strings does not parse back: %v, %q", err, back.String())
	}
	if l.Empty() || !l.Allows(netip.MustParseAddr("::1")) || l.Allows(netip.MustParseAddr("127.0.0.2")) {
		t.Error("flag-built list allows the wrong addresses")
	}
}

// FuzzParse checks that a list that parses prints back to a list that
// parses to the same prefixes, and that it allows what it contains.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "127.0.0.1", "::ffff:10.0.0.0/104", "2001:db8::/32,198.18.0.0/15", "1.2.3.4/33", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(l.Strings()...)
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, l.String(), err)
		}
		if back.String() != l.String() {
			t.Fatalf("%q: printed %q, reparsed %q", s, l.String(), back.String())
		}
		for _, p := range l.Prefixes() {
			if !l.Allows(p.Addr()) {
				t.Fatalf("%q does not allow its own prefix %s", s, p)
			}
		}
	})
}
