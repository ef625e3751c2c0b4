// Package cidr implements the address lists behind murder's --allow-from
// flags: a set of IP prefixes that a listener or a dialer checks a remote
// address against. It imports nothing of murder, so the tracker and the
// transfer engine share one parser and one rule.
package cidr

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrSyntax is returned (wrapped) for an entry that is neither a prefix
// nor an address.
var ErrSyntax = errors.New("cidr: want an address or a prefix such as 198.18.0.0/15")

// List is a set of prefixes. The empty List allows every address; a List
// with entries allows only the addresses inside one of them. It is a
// flag.Value (and a pflag.Value), so a repeatable flag appends to it.
type List struct {
	prefixes []netip.Prefix
}

// Parse returns the List of the given entries: prefixes ("10.0.0.0/8",
// "2001:db8::/32") or single addresses ("198.18.0.5", taken as /32 or
// /128). An entry may also hold several, separated by commas.
func Parse(entries ...string) (List, error) {
	var l List
	for _, e := range entries {
		if err := l.Set(e); err != nil {
			return List{}, err
		}
	}
	return l, nil
}

// Set adds the comma-separated entries of s; it is flag.Value's Set.
func (l *List) Set(s string) error {
	for e := range strings.SplitSeq(s, ",") {
		e = strings.TrimSpace(e)
		p, err := parseOne(e)
		if err != nil {
			return err
		}
		l.prefixes = append(l.prefixes, p)
	}
	return nil
}

func parseOne(e string) (netip.Prefix, error) {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: %q", ErrSyntax, e)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(e)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%w: %q", ErrSyntax, e)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// String lists the prefixes, comma-separated; it is flag.Value's String.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Type names the flag's value in --help (pflag.Value).
func (l *List) Type() string { return "CIDR" }

// Empty reports whether the list has no entries, and so allows everyone.
func (l List) Empty() bool { return len(l.prefixes) == 0 }

// Prefixes returns a copy of the list's prefixes.
func (l List) Prefixes() []netip.Prefix { return append([]netip.Prefix(nil), l.prefixes...) }

// Allows reports whether a may connect: true for every address when the
// list is empty, else only for an address inside one of its prefixes. An
// IPv4-mapped IPv6 address is taken as the IPv4 address it carries.
func (l List) Allows(a netip.Addr) bool {
	if len(l.prefixes) == 0 {
		return true
	}
	a = a.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Strings returns the entries as they parse back (for command lines
// built from a List).
func (l List) Strings() []string {
	s := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		s[i] = p.String()
	}
	return s
}
