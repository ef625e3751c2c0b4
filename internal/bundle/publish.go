package bundle

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotEmpty is returned (wrapped) when the destination exists, is not an
// empty directory, and replacing it was not asked for.
var ErrNotEmpty = errors.New("bundle: destination exists and is not empty")

// Publish places a new tree at dest atomically. It creates a temporary
// directory beside dest, calls fill with it, and renames it to dest only
// when fill succeeds. On any failure dest is left exactly as it was and the
// temporary directory is removed.
//
// When dest exists and is anything but an empty directory, Publish refuses
// with ErrNotEmpty unless replace is set (Murder's --unsafe-please-delete);
// then the old dest is swapped out in one rename and removed afterwards.
// Missing parents of dest are created.
func Publish(dest string, replace bool, fill func(dir string) error) error {
	st, err := NewStage(dest, replace)
	if err != nil {
		return err
	}
	defer st.Abort()
	if err := fill(st.Dir()); err != nil {
		return err
	}
	return st.Commit()
}

// Stage is a new tree being built beside its destination, for callers
// that fill it over a longer time than one call (a download written into
// place as it arrives). Commit renames it into place as Publish does;
// Abort removes it, or keeps it for a later run (ResumableStage). Exactly
// one of them takes effect.
//
// While it exists the stage's directory is locked (flock): a stage left
// behind by a process that died is unlocked, and the next NewStage for the
// same destination removes it.
type Stage struct {
	dest, dir string
	replace   bool
	keep      bool // Abort keeps dir for the next ResumableStage
	done      bool
	lock      *os.File // open on dir, holding the lock; nil where unsupported
}

// NewStage checks dest as Publish does (see CheckDestination), creates its
// missing parents and an empty temporary directory beside it.
func NewStage(dest string, replace bool) (*Stage, error) {
	dest, parent, base, err := prepareStage(dest, replace)
	if err != nil {
		return nil, err
	}
	// Made under another name and renamed once locked, so that no other
	// NewStage ever sees it unlocked.
	tmp, err := os.MkdirTemp(parent, "."+base+".murder-init-*")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	lock := lockDir(tmp)
	dir := filepath.Join(parent, "."+base+".murder-new-"+strings.TrimPrefix(filepath.Base(tmp), "."+base+".murder-init-"))
	if err := os.Rename(tmp, dir); err != nil {
		if lock != nil {
			lock.Close()
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &Stage{dest: dest, dir: dir, replace: replace, lock: lock}, nil
}

// ResumableStage is NewStage for a tree that a later run may finish: its
// directory, .BASE.murder-partial-KEY beside dest, is kept by Abort and
// filled on by the next ResumableStage with the same key, which finds in
// it what the earlier run left. A peer downloads files it places as they
// are into one (keyed by the torrent's info hash), so that they are
// written once, where they end up. Partial stages of other keys for the
// same destination, which no process holds, are removed: they were for
// something else that was to be placed there. It fails when another
// process holds the stage.
func ResumableStage(dest string, replace bool, key string) (*Stage, error) {
	if key == "" || key != filepath.Base(key) || strings.ContainsAny(key, `*?[\`) {
		return nil, fmt.Errorf("bundle: invalid stage key %q", key)
	}
	dest, parent, base, err := prepareStage(dest, replace)
	if err != nil {
		return nil, err
	}
	prefix := filepath.Join(parent, "."+base+".murder-partial-")
	dir := prefix + key
	others, _ := filepath.Glob(prefix + "*")
	for _, d := range others {
		if d != dir {
			removeAbandoned(d)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	lock := lockDir(dir)
	if lock == nil && lockSupported {
		return nil, fmt.Errorf("bundle: another murder process is placing %s (it holds %s)", dest, dir)
	}
	return &Stage{dest: dest, dir: dir, replace: replace, keep: true, lock: lock}, nil
}

// prepareStage checks dest, creates its missing parents and removes the
// abandoned stages beside it. It returns dest made absolute, its parent
// and its base name.
func prepareStage(dest string, replace bool) (abs, parent, base string, err error) {
	if dest == "" {
		return "", "", "", errors.New("bundle: no destination given")
	}
	if abs, err = filepath.Abs(dest); err != nil {
		return "", "", "", fmt.Errorf("bundle: %w", err)
	}
	parent, base = filepath.Dir(abs), filepath.Base(abs)
	if parent == abs {
		return "", "", "", fmt.Errorf("bundle: refusing to publish over %s", abs)
	}
	if err := CheckDestination(abs, replace); err != nil {
		return "", "", "", err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", "", "", fmt.Errorf("bundle: destination: %w", err)
	}
	removeAbandoned(filepath.Join(parent, "."+base+".murder-new-*"))
	return abs, parent, base, nil
}

// removeAbandoned removes the stages matching pattern that no process
// holds locked.
func removeAbandoned(pattern string) {
	dirs, _ := filepath.Glob(pattern)
	for _, d := range dirs {
		if l := lockDir(d); l != nil {
			os.RemoveAll(d)
			l.Close()
		}
	}
}

// Dir returns the temporary directory to fill.
func (st *Stage) Dir() string { return st.dir }

// Abort removes the temporary directory (a resumable stage's is kept),
// unless Commit or Abort ran.
func (st *Stage) Abort() {
	if !st.done {
		st.done = true
		if !st.keep {
			os.RemoveAll(st.dir)
		}
		st.unlock()
	}
}

func (st *Stage) unlock() {
	if st.lock != nil {
		st.lock.Close()
		st.lock = nil
	}
}

// Commit renames the filled directory to the destination, checking the
// destination again first: it may have appeared meanwhile. On failure the
// destination is left as it was and the temporary directory is removed
// (a resumable stage's is kept).
func (st *Stage) Commit() (err error) {
	if st.done {
		return errors.New("bundle: stage already committed or aborted")
	}
	st.done = true
	defer st.unlock()
	tmp, dest := st.dir, st.dest
	parent, base := filepath.Dir(dest), filepath.Base(dest)
	defer func() {
		// After a swap tmp holds the old tree; after a rename it is gone.
		if err != nil && st.keep {
			return
		}
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil && !os.IsNotExist(rerr) {
			err = fmt.Errorf("bundle: remove old destination: %w", rerr)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := CheckDestination(dest, st.replace); err != nil {
		return err
	}
	if _, err := os.Lstat(dest); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, dest); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		return nil
	}
	// dest exists (an empty directory, or anything with replace): swap.
	// After the swap tmp holds the old tree, which the deferred RemoveAll
	// deletes.
	if err := exchange(tmp, dest); err == nil {
		return nil
	}
	old, err := os.MkdirTemp(parent, "."+base+".murder-old-*")
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.Rename(dest, filepath.Join(old, base)); err != nil {
		_ = os.Remove(old)
		return fmt.Errorf("bundle: move old destination aside: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		if rerr := os.Rename(filepath.Join(old, base), dest); rerr != nil {
			return fmt.Errorf("bundle: %w (and the old destination is left at %s: %v)", err, old, rerr)
		}
		_ = os.Remove(old)
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("bundle: remove old destination: %w", err)
	}
	return nil
}

// CheckDestination returns an error wrapping ErrNotEmpty, with the hint to
// use --unsafe-please-delete, when dest exists and is anything but an
// empty directory and replace is not set. Callers use it to refuse before
// doing any work; Publish checks again.
func CheckDestination(dest string, replace bool) error {
	if replace {
		return nil
	}
	fi, err := os.Lstat(dest)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bundle: destination: %w", err)
	}
	if fi.IsDir() {
		empty, err := isEmptyDir(dest)
		if err != nil {
			return fmt.Errorf("bundle: destination: %w", err)
		}
		if empty {
			return nil
		}
	}
	return fmt.Errorf("%w: %s (use --unsafe-please-delete to replace it)", ErrNotEmpty, dest)
}

func isEmptyDir(name string) (bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}
