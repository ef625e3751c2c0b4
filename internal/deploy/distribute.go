package deploy

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/murder-deploy/murder/internal/fleet"
)

// DistributeFiles copies the murder binary to remote_murder_path on every
// host, skipping hosts that already have the same binary, and checks that
// it runs there.
func (f *Fleet) DistributeFiles(ctx context.Context) error {
	return f.distribute(ctx, f.Pick(f.inv.All()))
}

func (f *Fleet) distribute(ctx context.Context, hosts []fleet.Host) error {
	bin := f.cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("deploy: find the murder binary: %w (pass --binary)", err)
		}
		bin = exe
	}
	f.header("distribute-files", len(hosts))
	var mu sync.Mutex
	copied, same := 0, 0
	err := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		res, err := c.CopyFile(ctx, bin, f.inv.Binary(), 0o755, true)
		if err != nil {
			return err
		}
		if _, err := c.Output(ctx, fleet.Quote(f.inv.Binary())+" version"); err != nil {
			return fmt.Errorf("deploy: %s does not run there: %w", f.inv.Binary(), err)
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
