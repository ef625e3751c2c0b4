package release

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// HistoryFile is the name, inside the destination path, of the file that
// lists the activations, oldest first.
const HistoryFile = ".murder-releases"

// Entry is one activation: a tag and when it became current.
type Entry struct {
	Tag  string
	Time time.Time
}

// ErrBadHistory is wrapped by ParseHistory's errors.
var ErrBadHistory = errors.New("release: bad history")

// ParseHistory reads a history file: one activation per line, oldest
// first, written "TIME TAG" with TIME in RFC 3339. Blank lines and lines
// starting with '#' are skipped.
func ParseHistory(data []byte) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		ts, tag, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: want \"TIME TAG\", got %q", ErrBadHistory, n, line)
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: bad time %q", ErrBadHistory, n, ts)
		}
		tag = strings.TrimSpace(tag)
		if err := ValidTag(tag); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadHistory, n, err)
		}
		out = append(out, Entry{Tag: tag, Time: t.UTC()})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistory, err)
	}
	return out, nil
}

// FormatHistory writes entries in the form ParseHistory reads.
func FormatHistory(entries []Entry) []byte {
	var b bytes.Buffer
	b.WriteString("# murder activations, oldest first: TIME TAG\n")
	for _, e := range entries {
		b.WriteString(e.Time.UTC().Format(time.RFC3339Nano))
		b.WriteByte(' ')
		b.WriteString(e.Tag)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ValidTag checks that tag names a release directory of the destination
// path: not empty, no '/', NUL, newline or "..", not "current" or
// "shared", and not one of murder's own dot files.
func ValidTag(tag string) error {
	switch {
	case tag == "":
		return errors.New("release: empty tag")
	case strings.ContainsAny(tag, "/\x00\n\r") || strings.Contains(tag, ".."):
		return fmt.Errorf("release: bad tag %q: no '/', '..', NUL or newline", tag)
	case strings.TrimSpace(tag) != tag || strings.ContainsAny(tag, " \t"):
		return fmt.Errorf("release: bad tag %q: no spaces", tag)
	case tag == CurrentLink || tag == SharedDir || tag == ".":
		return fmt.Errorf("release: bad tag %q: the name is taken by murder's layout", tag)
	case strings.HasPrefix(tag, ".murder"):
		return fmt.Errorf("release: bad tag %q: names starting with .murder are murder's own", tag)
	}
	return nil
}
