package sshsig

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrAllowedSigners is wrapped by every error of ParseAllowedSigners.
var ErrAllowedSigners = errors.New("sshsig: bad allowed signers")

// maxAllowedSigners bounds what LoadAllowedSigners reads.
const maxAllowedSigners = 16 << 20

// AllowedSigners is a parsed OpenSSH allowed_signers file (see ssh-keygen(1),
// ALLOWED SIGNERS), the file git and ssh-keygen -Y verify read.
type AllowedSigners struct {
	Entries []Entry
}

// Entry is one line of an allowed_signers file:
//
//	principals [options] keytype base64-key [comment]
type Entry struct {
	// Line is the entry's line number, from 1.
	Line int
	// Principals is the comma-separated pattern list of identities, as
	// written (user@example.com,*@ops.example.com).
	Principals string
	// CertAuthority marks a key that signs certificates; such an entry
	// never lets the key itself sign, and this package does not check
	// certificates.
	CertAuthority bool
	// Namespaces is the pattern list of namespaces the key may sign for
	// (namespaces="murder,git"); "" means any.
	Namespaces string
	// ValidAfter and ValidBefore bound when the key may be used; zero
	// means no bound.
	ValidAfter, ValidBefore time.Time
	// Key is the public key.
	Key ssh.PublicKey
	// Comment is what follows the key, if anything.
	Comment string
}

// LoadAllowedSigners reads and parses the allowed_signers file at path.
func LoadAllowedSigners(path string) (*AllowedSigners, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sshsig: allowed signers: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAllowedSigners+1))
	if err != nil {
		return nil, fmt.Errorf("sshsig: allowed signers: %w", err)
	}
	if len(data) > maxAllowedSigners {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrAllowedSigners, path, maxAllowedSigners)
	}
	a, err := ParseAllowedSigners(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ParseAllowedSigners parses the content of an allowed_signers file. Blank
// lines and lines starting with '#' are skipped; any other line that is
// not a valid entry is an error naming the line. A file with no entries is
// valid (and allows no one).
func ParseAllowedSigners(data []byte) (*AllowedSigners, error) {
	a := &AllowedSigners{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		s := strings.TrimLeft(line, " \t")
		if s == "" || s[0] == '#' {
			continue
		}
		e, err := parseEntry(s)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrAllowedSigners, i+1, err)
		}
		e.Line = i + 1
		a.Entries = append(a.Entries, e)
	}
	return a, nil
}

func parseEntry(s string) (Entry, error) {
	var e Entry
	principals, rest, err := nextField(s)
	if err != nil {
		return e, err
	}
	principals = strings.Trim(principals, `"`)
	if principals == "" {
		return e, errors.New("no principals")
	}
	e.Principals = principals
	if rest == "" {
		return e, errors.New("no key after the principals")
	}
	// Options come before the key when the next field is not a key type.
	f1, after1, err := nextField(rest)
	if err != nil {
		return e, err
	}
	if !isKeyType(f1) {
		if err := e.parseOptions(f1); err != nil {
			return e, err
		}
		rest = after1
		if rest == "" {
			return e, errors.New("no key after the options")
		}
		if f1, after1, err = nextField(rest); err != nil {
			return e, err
		}
		if !isKeyType(f1) {
			return e, fmt.Errorf("unknown key type %q", f1)
		}
	}
	keyType := f1
	b64, comment, err := nextField(after1)
	if err != nil {
		return e, err
	}
	if b64 == "" {
		return e, fmt.Errorf("no key after the key type %s", keyType)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return e, fmt.Errorf("key: bad base64: %w", err)
	}
	k, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return e, fmt.Errorf("key: %w", err)
	}
	if k.Type() != keyType {
		return e, fmt.Errorf("key: the key is of type %s, the line says %s", k.Type(), keyType)
	}
	e.Key = k
	e.Comment = comment
	return e, nil
}

// nextField splits off the first whitespace-separated field of s, where
// whitespace inside double quotes does not separate, and returns it and
// the rest with leading whitespace removed.
func nextField(s string) (field, rest string, err error) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			inQuote = !inQuote
		case (c == ' ' || c == '\t') && !inQuote:
			return s[:i], strings.TrimLeft(s[i:], " \t"), nil
		}
	}
	if inQuote {
		return "", "", errors.New("unterminated quote")
	}
	return s, "", nil
}

// isKeyType reports whether s names a public key algorithm, certificate
// types included so that they are reported as such.
func isKeyType(s string) bool {
	switch s {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoRSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256, "ssh-dss":
		return true
	}
	return strings.HasSuffix(s, "-cert-v01@openssh.com")
}

// parseOptions parses the comma-separated options field.
func (e *Entry) parseOptions(field string) error {
	for field != "" {
		var opt string
		inQuote := false
		end := len(field)
		for i := 0; i < len(field); i++ {
			if field[i] == '"' {
				inQuote = !inQuote
			} else if field[i] == ',' && !inQuote {
				end = i
				break
			}
		}
		opt, field = field[:end], strings.TrimPrefix(field[end:], ",")
		name, val, hasVal := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		if hasVal {
			if len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' {
				return fmt.Errorf("option %s: want a value in double quotes", name)
			}
			val = val[1 : len(val)-1]
		}
		var err error
		switch {
		case name == "cert-authority" && !hasVal:
			e.CertAuthority = true
		case name == "namespaces" && hasVal:
			if val == "" {
				return errors.New("option namespaces: empty list")
			}
			e.Namespaces = val
		case name == "valid-after" && hasVal:
			e.ValidAfter, err = parseTime(val)
		case name == "valid-before" && hasVal:
			e.ValidBefore, err = parseTime(val)
		default:
			return fmt.Errorf("unknown option %q (want cert-authority, namespaces=\"...\", valid-after=\"...\" or valid-before=\"...\")", opt)
		}
		if err != nil {
			return fmt.Errorf("option %s: %w", name, err)
		}
	}
	return nil
}

// parseTime parses an allowed_signers time: YYYYMMDD, YYYYMMDDHHMM or
// YYYYMMDDHHMMSS, in UTC with a trailing Z, else in local time.
func parseTime(s string) (time.Time, error) {
	loc := time.Local
	if t, ok := strings.CutSuffix(s, "Z"); ok {
		s, loc = t, time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("bad time %q: want YYYYMMDD[HHMM[SS]][Z]", s)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q: want YYYYMMDD[HHMM[SS]][Z]", s)
	}
	return t, nil
}

// Find returns the first entry that lets key sign in namespace at time
// now: the same key, not a cert-authority, a namespaces pattern list (if
// any) that matches, and now within its validity. Otherwise the error
// wraps ErrNotAllowed and says why.
func (a *AllowedSigners) Find(key ssh.PublicKey, namespace string, now time.Time) (*Entry, error) {
	want := key.Marshal()
	var why string
	for i := range a.Entries {
		e := &a.Entries[i]
		if !bytes.Equal(e.Key.Marshal(), want) {
			continue
		}
		switch {
		case e.CertAuthority:
			why = fmt.Sprintf("line %d lists it as a cert-authority, which murder does not accept for signing", e.Line)
		case e.Namespaces != "" && matchList(namespace, e.Namespaces) != 1:
			why = fmt.Sprintf("line %d allows it for namespaces %q only, not %q", e.Line, e.Namespaces, namespace)
		case !e.ValidAfter.IsZero() && now.Before(e.ValidAfter):
			why = fmt.Sprintf("line %d makes it valid only after %s", e.Line, e.ValidAfter.Format(time.RFC3339))
		case !e.ValidBefore.IsZero() && !now.Before(e.ValidBefore):
			why = fmt.Sprintf("line %d made it valid only before %s", e.Line, e.ValidBefore.Format(time.RFC3339))
		default:
			return e, nil
		}
	}
	if why == "" {
		return nil, fmt.Errorf("%w: %s key %s is not listed", ErrNotAllowed, key.Type(), ssh.FingerprintSHA256(key))
	}
	return nil, fmt.Errorf("%w: %s key %s: %s", ErrNotAllowed, key.Type(), ssh.FingerprintSHA256(key), why)
}

// matchList matches s against an OpenSSH pattern list (comma-separated
// patterns with * and ?, a leading ! negating one): -1 when a negated
// pattern matches, 1 when another matches, 0 when none does.
func matchList(s, list string) int {
	got := 0
	for _, p := range strings.Split(list, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// matchPattern matches s against a pattern of literal characters, '*'
// (any run) and '?' (any one byte).
func matchPattern(s, p string) bool {
	// Iterative matching with one backtrack point for the last '*'.
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si++
			pi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
