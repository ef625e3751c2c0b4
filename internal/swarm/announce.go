package swarm

import (
	"context"
	"net"
	"time"

	"github.com/murder-deploy/murder/internal/tracker"
)

const (
	defaultInterval = 30 * time.Second
	minRetry        = 2 * time.Second
	maxRetry        = 60 * time.Second
	lonelyRetry     = 4 * time.Second
	stoppedTimeout  = 5 * time.Second
)

// announceLoop announces started, then at the tracker's interval (sooner
// while there are no peers), completed once the download completes, and
// stopped when ctx ends.
func (s *Swarm) announceLoop(ctx context.Context) {
	tiers := s.mi.Trackers()
	if len(tiers) == 0 {
		return
	}
	client := tracker.NewClient(tiers, tracker.ClientConfig{Logger: s.log, HTTPClient: s.cfg.HTTPClient})
	port := 0
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	if port <= 0 || port > 65535 {
		s.log.Warn("not announcing: no listening port")
		return
	}
	req := func(event string) tracker.AnnounceRequest {
		s.mu.Lock()
		left := s.total - s.bytesDone
		s.mu.Unlock()
		return tracker.AnnounceRequest{
			InfoHash: s.infoHash, PeerID: s.peerID, IP: s.cfg.AnnounceIP, Port: port,
			Uploaded: s.uploaded.Load(), Downloaded: s.downloaded.Load(), Left: left,
			Event: event, NumWant: 2 * s.cfg.MaxConns, Name: s.mi.Info.Name,
			Place: s.cfgPlace,
		}
	}
	event := "started"
	started := false
	wasComplete := isClosed(s.complete)
	retry := minRetry
	for {
		resp, err := client.Announce(ctx, req(event))
		if ctx.Err() != nil {
			break
		}
		wait := retry
		if err != nil {
			s.log.Warn("announce", "event", event, "err", err)
			retry = min(2*retry, maxRetry)
			s.mu.Lock()
			lonely := len(s.conns) == 0 && !s.have.Full()
			s.mu.Unlock()
			if lonely {
				// A peer that knows nobody has nothing to do but retry.
				wait = min(wait, lonelyRetry)
				retry = min(retry, lonelyRetry)
			}
		} else {
			if !started {
				close(s.announced)
			}
			started = true
			retry = minRetry
			event = ""
			wait = resp.Interval
			if wait <= 0 {
				wait = defaultInterval
			}
			if resp.Places != nil || resp.Place.Known() {
				s.learnPlaces(resp.Place, resp.Peers, resp.Places)
			}
			s.mu.Lock()
			s.pending = append(s.pending, resp.Peers...)
			// A peer that knows nobody, or whose tracker knows no seeder
			// yet (it announced before the seeder did), comes back soon:
			// the peers it got may never reach one.
			lonely := (len(s.conns) == 0 || resp.Complete == 0) && !s.have.Full()
			s.mu.Unlock()
			s.poke()
			if lonely {
				wait = max(min(wait, 5*time.Second), resp.MinInterval)
			}
		}
		var completeCh <-chan struct{}
		if !wasComplete {
			completeCh = s.complete
		}
		t := s.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C():
		case <-completeCh:
			wasComplete = true
			if started {
				event = "completed"
			}
		}
		t.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	if !started {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stoppedTimeout)
	defer cancel()
	if _, err := client.Announce(sctx, req("stopped")); err != nil {
		s.log.Debug("announce stopped", "err", err)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
