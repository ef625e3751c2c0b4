package swarm

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
)

// TestPacerSpacesBlocks checks, in virtual time, that blocks go one after
// another at the rate, in the order they asked, and that a turn given
// back passes to the next.
func TestPacerSpacesBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = peerwire.BlockSize
		p := newPacer(realClock{}, 1<<20)
		d := p.time(n) // 15.625 ms
		start := time.Now()
		if p.enter(n) != nil {
			t.Fatal("the first block had to wait")
		}
		turns := make([]*turn, 4)
		for i := range turns {
			if turns[i] = p.enter(n); turns[i] == nil {
				t.Fatalf("block %d went at once behind another", i+1)
			}
		}
		p.leave(turns[1])
		// The first block may start half its time early (sendLocked), so
		// the second goes after half a block's time, then one per block.
		want := []time.Duration{d / 2, 0, d/2 + d, d/2 + 2*d}
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
// rate over the whole run.
func TestPacerKeepsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate, writers, each = 4 << 20, 4, 50
		p := newPacer(realClock{}, rate)
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
		// The last block's turn comes after all the others, less the half
		// block the first may start early.
		got := time.Since(start)
		want := p.time((writers*each-1)*peerwire.BlockSize) - p.time(peerwire.BlockSize)/2
		if got != want {
			t.Errorf("%d blocks took %v, want %v", writers*each, got, want)
		}
	})
}

// TestPacedPeerStillAsks has a peer whose uploads are paced at one block
// a second download from a peer that is not: its requests must not wait
// for its blocks' turns. It holds the first 8 of 64 pieces and the other
// peer the rest; its pipeline is a few blocks deep, so it asks for the 56
// pieces in many rounds while its 8 blocks go out over 6.5 s (the first at once, the second half a block early).
func TestPacedPeerStillAsks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pieces, held = 64, 8
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
			t.Errorf("the paced peer took %v to download 56 blocks over a pipe", slowTook)
		}
		if want := 6500 * time.Millisecond; fastTook < want {
			t.Errorf("8 blocks paced at one a second arrived in %v, want at least %v", fastTook, want)
		}
	})
}
