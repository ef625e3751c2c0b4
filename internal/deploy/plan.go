package deploy

import (
	"errors"
	"strconv"
	"strings"

	"github.com/murder-deploy/murder/internal/fleet"
)

// Plan prints what Deploy would do with opt, host by host, and runs
// nothing (murder deploy --dry-run). Addresses that SSH would find (the
// tracker's, each peer's announce address) are shown as HOST.
func (f *Fleet) Plan(opt Options) error {
	if err := ValidTag(opt.Tag); err != nil {
		return err
	}
	selected := f.Pick(f.inv.Peers)
	if len(selected) == 0 {
		return errors.New("deploy: --limit and --role select no peer")
	}
	bin := fleet.Quote(f.inv.Binary())
	f.say("==> deploy %s (dry run: nothing is run)", opt.Tag)
	if f.inv.Trust.Signed() {
		f.say("  distribute-files: %s and %s to %s", f.inv.Binary(), f.inv.AllowedSignersPath(), strings.Join(specs(f.deployHosts()), ", "))
	} else {
		f.say("  distribute-files: %s to %s", f.inv.Binary(), strings.Join(specs(f.deployHosts()), ", "))
	}
	f.say("  start-tracker on %s: %s %s (unless it runs)", f.inv.Tracker.Spec, bin, f.trackerArgs())
	f.say("  create-torrent on %s: %s create --tag %s --files-path %s --tracker TRACKER:%d --temp-path %s%s",
		f.inv.Seeder.Spec, bin, fleet.Quote(opt.Tag), remotePath(opt.FilesPath), f.inv.TrackerPort, fleet.Quote(f.inv.TempPath), f.signArgs())
	f.say("  start-seeding on %s: %s", f.inv.Seeder.Spec, bin+" "+shellWords(seedCommand{Torrent: f.remoteTemp(torrentName(opt.Tag)), IP: "HOST", MaxUploadRate: f.inv.MaxUploadRate, AllowFrom: f.inv.Trust.AllowFrom}.args()))
	for _, h := range selected {
		args := f.peerCommand(opt.Tag, opt.PeerOptions, h, "HOST").args()
		f.say("  peer on %s: %s %s", h.Spec, bin, shellWords(args))
	}
	f.say("  stop-seeding, stop-tracker (if this run started it), clean-temp-files")
	if opt.Activate != nil {
		a := *opt.Activate
		a.Destination = opt.Destination
		sizes := waves(len(selected), a.Canary, a.Batch)
		var ws []string
		for _, n := range sizes {
			ws = append(ws, strconv.Itoa(n))
		}
		need := len(selected)
		if a.MinHosts > 0 {
			need = min(a.MinHosts, need)
		}
		f.say("  activate once %d of %d peers have %s, in waves of %s: %s %s", need, len(selected), opt.Tag, strings.Join(ws, ", "), bin, shellWords(activateArgs(opt.Tag, a)))
	}
	return nil
}
