package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/sshsig"
)

// DistributeFiles copies the murder binary to remote_murder_path on every
// host, skipping hosts that already have the same binary, and checks that
// it runs there.
func (f *Fleet) DistributeFiles(ctx context.Context) error {
	hosts := f.Pick(f.inv.All())
	if f.cfg.DryRun {
		bin, err := f.localBinary()
		if err != nil {
			return fmt.Errorf("deploy: find the murder binary: %w (pass --binary)", err)
		}
		f.dryRun("distribute-files", hosts, func(fleet.Host) string {
			line := "copy " + bin + " to " + f.inv.Binary() + " unless the same binary is there, then " + f.bin() + " version"
			if a := f.inv.Trust.AllowedSigners; a != "" {
				line += "; copy " + a + " to " + f.inv.AllowedSignersPath() + " unless the same file is there"
			}
			return line
		})
		return nil
	}
	return f.distribute(ctx, hosts, false, nil)
}

// versionCheck runs after the binary is in place, in the same session:
// exit status 4 says that it does not run there.
const versionCheck = `out=$("$d" version 2>&1) || { printf '%s\n' "$out" >&2; exit 4; }`

// distribute copies the binary to every host at once (up to the SSH
// concurrency), each in one session that hashes what is there, streams
// the binary only when it differs, and runs it. The binary is read and
// hashed once for all hosts. With quick, a host's binary is hashed again
// only when it changed since murder last checked it (fleet.Put). done,
// when not nil, is called as each host finishes, so that later steps on a
// host need not wait for the others.
func (f *Fleet) distribute(ctx context.Context, hosts []fleet.Host, quick bool, done func(h fleet.Host, err error)) error {
	report := func(h fleet.Host, err error) {
		if done != nil {
			done(h, err)
		}
	}
	bin := f.cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			err = fmt.Errorf("deploy: find the murder binary: %w (pass --binary)", err)
			for _, h := range hosts {
				report(h, err)
			}
			return err
		}
		bin = exe
	}
	f.header("distribute-files", len(hosts))
	src, err := fleet.OpenLocalFile(bin)
	if err != nil {
		for _, h := range hosts {
			report(h, err)
		}
		return fmt.Errorf("deploy: %w", err)
	}
	defer src.Close()
	var allowed *fleet.LocalFile
	if a := f.inv.Trust.AllowedSigners; a != "" {
		// Checked here, so that a bad file fails the deploy once rather
		// than every peer.
		if _, err := sshsig.LoadAllowedSigners(a); err != nil {
			err = fmt.Errorf("deploy: [trust] allowed_signers: %w", err)
			for _, h := range hosts {
				report(h, err)
			}
			return err
		}
		if allowed, err = fleet.OpenLocalFile(a); err != nil {
			err = fmt.Errorf("deploy: [trust] allowed_signers: %w", err)
			for _, h := range hosts {
				report(h, err)
			}
			return err
		}
		defer allowed.Close()
	}
	var mu sync.Mutex
	copied, same := 0, 0
	err = fleet.Each(ctx, hosts, f.run.Concurrency(), func(ctx context.Context, h fleet.Host) (err error) {
		start := time.Now()
		defer func() {
			f.rec.add(h.Spec, time.Since(start), 0, err)
			report(h, err)
		}()
		c, err := f.conn(ctx, h)
		if err != nil {
			return err
		}
		res, err := c.Put(ctx, fleet.Put{Src: src, Dst: f.inv.Binary(), Mode: 0o755, SkipSame: true, Stamp: true, Quick: quick, Then: versionCheck})
		var ee *fleet.ExitError
		if errors.As(err, &ee) && ee.Status == 4 {
			return fmt.Errorf("deploy: %s does not run there: %s", f.inv.Binary(), ee.Stderr)
		}
		if err != nil {
			return err
		}
		if allowed != nil {
			ares, err := c.Put(ctx, fleet.Put{Src: allowed, Dst: f.inv.AllowedSignersPath(), Mode: 0o644, SkipSame: true})
			if err != nil {
				return fmt.Errorf("deploy: copy allowed signers: %w", err)
			}
			if ares != fleet.Unchanged {
				res = ares
			}
		}
		mu.Lock()
		if res == fleet.Unchanged {
			same++
		} else {
			copied++
		}
		mu.Unlock()
		return nil
	})
	f.say("  %s: copied to %d, already current on %d, failed on %d", f.inv.Binary(), copied, same, len(hosts)-copied-same)
	return err
}
