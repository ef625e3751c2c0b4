// Package release switches a destination path between the releases that
// murder placed in it, as Capistrano did on each server.
//
// Each release is a directory DEST/TAG. DEST/current is a relative
// symbolic link to the active one, always replaced by a rename, so it is
// never missing or half-written. DEST/.murder-releases lists the
// activations, oldest first (see ParseHistory); rollback walks it back.
// Files and directories shared by every release (Capistrano's linked files
// and directories) live under DEST/shared and are linked into a release
// when it is activated. Activate and Rollback leave everything as it was
// when they fail, and a crash between their steps leaves DEST/current
// pointing at a complete release; the history catches up on the next call.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Names inside the destination path.
const (
	CurrentLink = "current"
	SharedDir   = "shared"
	lockName    = ".murder-release.lock"
	tmpLink     = ".murder-current.tmp"
	replacedExt = ".murder-replaced"
)

// Sentinel errors.
var (
	ErrNoRelease  = errors.New("release: no release is active")
	ErrNoPrevious = errors.New("release: no earlier release to roll back to")
	ErrHook       = errors.New("release: hook failed")
)

// Options configure Activate.
type Options struct {
	// Destination is the directory that holds the releases (required).
	Destination string
	// Tag names the release to activate, the directory Destination/Tag
	// (required).
	Tag string
	// KeepReleases removes the oldest releases beyond this many after the
	// switch; 0 keeps them all. The active release and the one before it
	// are always kept, and only releases murder activated are removed.
	KeepReleases int
	// Shared are paths relative to the release, each linked to
	// Destination/shared/PATH, which must exist. What the release itself
	// holds at PATH is replaced (and put back if the activation fails).
	Shared []string
	// BeforeActivate and AfterActivate are shell commands run with the
	// working directory at the release and MURDER_TAG, MURDER_RELEASE and
	// MURDER_PREVIOUS in the environment: the first before the switch
	// (failing leaves everything as it was), the second after it (failing
	// switches back). Empty: none.
	BeforeActivate, AfterActivate string
	// HookOutput receives the hooks' standard output and error; nil
	// discards them.
	HookOutput io.Writer
	// Now returns the time recorded in the history; nil means time.Now.
	Now func() time.Time
}

// Result says what Activate or Rollback did.
type Result struct {
	Tag        string   `json:"tag"`                   // the release now active
	Previous   string   `json:"previous,omitempty"`    // the release active before ("" = none)
	Unchanged  bool     `json:"unchanged,omitempty"`   // Tag was already active: nothing was done
	Pruned     []string `json:"pruned,omitempty"`      // releases removed by KeepReleases
	PruneError string   `json:"prune_error,omitempty"` // why pruning stopped; the activation stands
}

// state is what a destination holds, read under the lock.
type state struct {
	dest    string
	current string // target of the current link, "" when there is none
	history []Entry
}

func load(dest string) (*state, error) {
	st := &state{dest: dest}
	fi, err := os.Lstat(filepath.Join(dest, CurrentLink))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("release: %w", err)
	case fi.Mode()&os.ModeSymlink == 0:
		return nil, fmt.Errorf("release: %s exists and is not a symbolic link: move it away first", filepath.Join(dest, CurrentLink))
	default:
		t, err := os.Readlink(filepath.Join(dest, CurrentLink))
		if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		st.current = filepath.Clean(t)
		if ValidTag(st.current) != nil {
			return nil, fmt.Errorf("release: %s points at %q, not at a release of %s: repair it or remove it", filepath.Join(dest, CurrentLink), t, dest)
		}
	}
	data, err := os.ReadFile(filepath.Join(dest, HistoryFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("release: %w", err)
	}
	if st.history, err = ParseHistory(data); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dest, HistoryFile), err)
	}
	// A crash after the switch and before the history was written leaves
	// the link ahead of the history: the link is the truth.
	if st.current != "" && (len(st.history) == 0 || st.history[len(st.history)-1].Tag != st.current) {
		var t time.Time
		if fi != nil {
			t = fi.ModTime().UTC()
		}
		st.history = append(st.history, Entry{Tag: st.current, Time: t})
	}
	return st, nil
}

// previous returns the index in the history of the release before the
// current one whose directory still exists, or -1.
func (st *state) previous() int {
	for i := len(st.history) - 2; i >= 0; i-- {
		e := st.history[i]
		if e.Tag == st.current {
			continue
		}
		if fi, err := os.Stat(filepath.Join(st.dest, e.Tag)); err == nil && fi.IsDir() {
			return i
		}
	}
	return -1
}

func (st *state) previousTag() string {
	if i := st.previous(); i >= 0 {
		return st.history[i].Tag
	}
	return ""
}

// Current returns the active release of dest ("" when none) and the one a
// rollback would return to ("" when none).
func Current(dest string) (current, previous string, err error) {
	st, err := load(dest)
	if err != nil {
		return "", "", err
	}
	return st.current, st.previousTag(), nil
}

// Activate makes opt.Tag the active release of opt.Destination.
func Activate(ctx context.Context, opt Options) (*Result, error) {
	if opt.Destination == "" {
		return nil, errors.New("release: the destination path is required")
	}
	if err := ValidTag(opt.Tag); err != nil {
		return nil, err
	}
	if opt.KeepReleases < 0 {
		return nil, fmt.Errorf("release: keep releases %d: want 0 (all) or more", opt.KeepReleases)
	}
	shared := make([]string, 0, len(opt.Shared))
	for _, p := range opt.Shared {
		c, err := sharedPath(p)
		if err != nil {
			return nil, err
		}
		shared = append(shared, c)
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	dest, err := filepath.Abs(opt.Destination)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	rel := filepath.Join(dest, opt.Tag)
	if fi, err := os.Lstat(rel); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("release: no release %s in %s (%v): deploy it first", opt.Tag, dest, unwrapPath(err))
	}
	st, unlock, err := loadLocked(dest)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st.current == opt.Tag {
		return &Result{Tag: opt.Tag, Previous: st.previousTag(), Unchanged: true}, nil
	}
	res := &Result{Tag: opt.Tag, Previous: st.current}

	var undo undoList
	ok := false
	defer func() {
		if !ok {
			undo.run()
		}
	}()
	replaced, err := linkShared(dest, rel, shared, &undo)
	if err != nil {
		return nil, err
	}
	env := []string{"MURDER_TAG=" + opt.Tag, "MURDER_RELEASE=" + rel, "MURDER_PREVIOUS=" + st.current}
	if err := runHook(ctx, "before-activate", opt.BeforeActivate, rel, env, opt.HookOutput); err != nil {
		return nil, err
	}
	if err := switchLink(dest, opt.Tag); err != nil {
		return nil, err
	}
	undo.add(func() error {
		if st.current == "" {
			return os.Remove(filepath.Join(dest, CurrentLink))
		}
		return switchLink(dest, st.current)
	})
	history := append(append([]Entry(nil), st.history...), Entry{Tag: opt.Tag, Time: now().UTC()})
	if err := writeHistory(dest, history); err != nil {
		return nil, err
	}
	undo.add(func() error { return writeHistory(dest, st.history) })
	if err := runHook(ctx, "after-activate", opt.AfterActivate, rel, env, opt.HookOutput); err != nil {
		return nil, fmt.Errorf("%w; switched back to %s", err, orNone(st.current))
	}
	ok = true
	for _, p := range replaced {
		os.RemoveAll(p)
	}
	if opt.KeepReleases > 0 {
		next := &state{dest: dest, current: opt.Tag, history: history}
		res.Pruned, err = prune(next, opt.KeepReleases)
		if err != nil {
			res.PruneError = err.Error()
		}
	}
	return res, nil
}

// Rollback points dest's current link back at the release active before
// the current one, and drops the current one's activation from the
// history, so a second rollback goes one further back. The release's files
// stay.
func Rollback(ctx context.Context, dest string) (*Result, error) {
	if dest == "" {
		return nil, errors.New("release: the destination path is required")
	}
	dest, err := filepath.Abs(dest)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, unlock, err := loadLocked(dest)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st.current == "" {
		return nil, fmt.Errorf("%w in %s (no %s link)", ErrNoRelease, dest, CurrentLink)
	}
	i := st.previous()
	if i < 0 {
		return nil, fmt.Errorf("%w: %s has no activation of another release before %s that is still there", ErrNoPrevious, dest, st.current)
	}
	prev := st.history[i].Tag
	if err := switchLink(dest, prev); err != nil {
		return nil, err
	}
	if err := writeHistory(dest, st.history[:i+1]); err != nil {
		if uerr := switchLink(dest, st.current); uerr != nil {
			return nil, fmt.Errorf("%w; and switching back to %s failed: %v", err, st.current, uerr)
		}
		return nil, err
	}
	return &Result{Tag: prev, Previous: st.current}, nil
}

// loadLocked takes dest's lock and reads its state; the caller calls
// unlock when done with it.
func loadLocked(dest string) (st *state, unlock func(), err error) {
	if unlock, err = lock(dest); err != nil {
		return nil, nil, err
	}
	if st, err = load(dest); err != nil {
		unlock()
		return nil, nil, err
	}
	return st, unlock, nil
}

// switchLink points dest/current at tag: a new link under a temporary
// name, renamed over the old one (rename replaces it atomically).
func switchLink(dest, tag string) error {
	tmp := filepath.Join(dest, tmpLink)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.Symlink(tag, tmp); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dest, CurrentLink)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("release: switch %s: %w", CurrentLink, err)
	}
	syncDir(dest)
	return nil
}

// writeHistory replaces the history file through a temporary file.
func writeHistory(dest string, entries []Entry) error {
	path := filepath.Join(dest, HistoryFile)
	f, err := os.CreateTemp(dest, HistoryFile+".tmp*")
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	_, err = f.Write(FormatHistory(entries))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("release: write history: %w", err)
	}
	syncDir(dest)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// sharedPath checks a --shared path: relative, inside the release.
func sharedPath(p string) (string, error) {
	c := filepath.Clean(p)
	if p == "" || filepath.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("release: shared path %q: want a path inside the release, like config/database.yml or log", p)
	}
	return c, nil
}

// linkShared links each shared path of the release rel to
// dest/shared/PATH. What the release held there is renamed aside; the
// returned paths are those to delete once the activation stands.
func linkShared(dest, rel string, shared []string, undo *undoList) ([]string, error) {
	var replaced []string
	var missing []string
	for _, p := range shared {
		if _, err := os.Lstat(filepath.Join(dest, SharedDir, p)); err != nil {
			missing = append(missing, filepath.Join(dest, SharedDir, p))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("release: shared paths missing: %s (create them once, before the first activation)", strings.Join(missing, ", "))
	}
	for _, p := range shared {
		at := filepath.Join(rel, p)
		target, err := filepath.Rel(filepath.Dir(at), filepath.Join(dest, SharedDir, p))
		if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		if t, err := os.Readlink(at); err == nil && t == target {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			return nil, fmt.Errorf("release: shared %s: %w", p, err)
		}
		if _, err := os.Lstat(at); err == nil {
			aside := at + replacedExt
			if err := os.RemoveAll(aside); err != nil {
				return nil, fmt.Errorf("release: shared %s: %w", p, err)
			}
			if err := os.Rename(at, aside); err != nil {
				return nil, fmt.Errorf("release: shared %s: %w", p, err)
			}
			undo.add(func() error { return os.Rename(aside, at) })
			replaced = append(replaced, aside)
		}
		if err := os.Symlink(target, at); err != nil {
			return nil, fmt.Errorf("release: shared %s: %w", p, err)
		}
		undo.add(func() error { return os.Remove(at) })
	}
	return replaced, nil
}

// runHook runs a hook command with /bin/sh in dir.
func runHook(ctx context.Context, name, command, dir string, env []string, out io.Writer) error {
	if command == "" {
		return nil
	}
	if out == nil {
		out = io.Discard
	}
	tail := &tailWriter{max: 512}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.MultiWriter(out, tail)
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := err.Error()
		if t := tail.String(); t != "" {
			msg += ": " + t
		}
		return fmt.Errorf("%w: %s %q: %s", ErrHook, name, command, msg)
	}
	return nil
}

// prune removes the oldest releases beyond keep, never the current one or
// the one before it, and drops them from the history.
func prune(st *state, keep int) ([]string, error) {
	protect := map[string]bool{st.current: true}
	if p := st.previousTag(); p != "" {
		protect[p] = true
	}
	seen := map[string]bool{}
	var order []string // most recently activated first
	for i := len(st.history) - 1; i >= 0; i-- {
		if t := st.history[i].Tag; !seen[t] {
			seen[t] = true
			order = append(order, t)
		}
	}
	var removed []string
	drop := map[string]bool{}
	var err error
	for i, t := range order {
		if i < keep || protect[t] {
			continue
		}
		if rerr := os.RemoveAll(filepath.Join(st.dest, t)); rerr != nil {
			err = fmt.Errorf("release: remove %s: %w", t, rerr)
			break
		}
		removed = append(removed, t)
		drop[t] = true
	}
	if len(drop) > 0 {
		var kept []Entry
		for _, e := range st.history {
			if !drop[e.Tag] {
				kept = append(kept, e)
			}
		}
		if werr := writeHistory(st.dest, kept); werr != nil && err == nil {
			err = werr
		}
	}
	return removed, err
}

type undoList struct{ fns []func() error }

func (u *undoList) add(fn func() error) { u.fns = append(u.fns, fn) }

// run undoes the steps, last first.
func (u *undoList) run() {
	for i := len(u.fns) - 1; i >= 0; i-- {
		u.fns[i]()
	}
}

type tailWriter struct {
	buf []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	return strings.Join(strings.Fields(string(t.buf)), " ")
}

func orNone(tag string) string {
	if tag == "" {
		return "no release"
	}
	return tag
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
