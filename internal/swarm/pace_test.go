package swarm

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
)

// TestPacerSpacesBlocks checks, in virtual time, that after a burst of
// paceBurst blocks the blocks go one after another at the rate, in the
// order they asked, and that a turn given back passes to the next.
func TestPacerSpacesBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = peerwire.BlockSize
		p := newPacer(realClock{}, 1<<20)
		d := p.time(n) // 15.625 ms
		start := time.Now()
		for i := range paceBurst {
			if p.enter(n) != nil {
				t.Fatalf("block %d of the first burst had to wait", i+1)
			}
		}
		turns := make([]*turn, 4)
		for i := range turns {
			if turns[i] = p.enter(n); turns[i] == nil {
				t.Fatalf("block %d after the burst went at once", i+1)
			}
		}
		p.leave(turns[1])
		want := []time.Duration{d, 0, 2 * d, 3 * d}
		for i, tn := range turns {
			if i == 1 {
				continue
			}
			<-tn.ch
			if got := time.Since(start); got != want[i] {
				t.Errorf("turn %d at %v, want %v", i, got, want[i])
			}
		}
		select {
		case <-turns[1].ch:
			t.Error("a turn given back was granted")
		default:
		}
	})
}

// TestPacerKeepsRate sends blocks from several writers and checks the
// rate over the whole run, with timers on time and with timers that fire
// late, as on a busy machine.
func TestPacerKeepsRate(t *testing.T) {
	const rate, writers, each = 16384 * 1000, 4, 100 // a block a millisecond
	for _, late := range []time.Duration{0, 3 * time.Millisecond} {
		t.Run(fmt.Sprint("late ", late), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPacer(lateClock{late}, rate)
				start := time.Now()
				done := make(chan struct{})
				for range writers {
					go func() {
						for range each {
							if tn := p.enter(peerwire.BlockSize); tn != nil {
								<-tn.ch
							}
						}
						done <- struct{}{}
					}()
				}
				for range writers {
					<-done
				}
				got := time.Since(start)
				ideal := p.time(writers * each * peerwire.BlockSize)
				if want := ideal - paceBurst*p.block; late == 0 && got != want {
					// The first burst at once, then a block at a time.
					t.Errorf("%d blocks took %v, want %v", writers*each, got, want)
				}
				if got > ideal+ideal/20 {
					t.Errorf("%d blocks took %v, more than 5 %% over %v", writers*each, got, ideal)
				}
			})
		})
	}
}

// lateClock is the real clock whose AfterFunc timers fire late.
type lateClock struct{ late time.Duration }

func (lateClock) Now() time.Time                 { return time.Now() }
func (lateClock) NewTimer(d time.Duration) Timer { return realClock{}.NewTimer(d) }
func (c lateClock) AfterFunc(d time.Duration, f func()) Timer {
	return realClock{}.AfterFunc(d+c.late, f)
}

// TestPacedPeerStillAsks has a peer whose uploads are paced at one block
// a second download from a peer that is not: its requests must not wait
// for its blocks' turns. It holds the first 16 of 64 pieces and the other
// peer the rest; its pipeline is a few blocks deep, so it asks for the 48
// pieces in many rounds while its 16 blocks go out over 12 s (a burst of
// paceBurst, then one a second).
func TestPacedPeerStillAsks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pieces, held = 64, 16
		mi, data := makeTorrent(t, pieces*peerwire.BlockSize, peerwire.BlockSize, nil)
		split := held * peerwire.BlockSize
		first := append(append([]byte(nil), data[:split]...), make([]byte, len(data)-split)...)
		rest := append(make([]byte, split), data[split:]...)
		pn := newPipeNet()
		slow, slowPath := newNodeWith(t, mi, first, Config{Network: pn.host(), UploadRate: peerwire.BlockSize})
		fast, fastPath := newNodeWith(t, mi, rest, Config{Network: pn.host()})
		if slow.have.Count() != held || fast.have.Count() != pieces-held {
			t.Fatalf("the peers start with %d and %d pieces", slow.have.Count(), fast.have.Count())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		wait := runAll(t, ctx, slow, fast)
		start := time.Now()
		slow.AddPeer(addrOf(t, fast))
		waitComplete(t, ctx, slow)
		slowTook := time.Since(start)
		waitComplete(t, ctx, fast)
		fastTook := time.Since(start)
		cancel()
		wait()
		checkFile(t, slowPath, data)
		checkFile(t, fastPath, data)
		if slowTook > time.Second {
			t.Errorf("the paced peer took %v to download %d blocks over a pipe", slowTook, pieces-held)
		}
		if want := (held - paceBurst) * time.Second; fastTook < want {
			t.Errorf("%d blocks paced at one a second arrived in %v, want at least %v", held, fastTook, want)
		}
	})
}
