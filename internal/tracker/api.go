package tracker

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The JSON API behind the tracker's live page, documented in
// docs/status.md: GET /api/swarms lists the swarms and the deploys, GET
// /api/swarms/INFOHASH (40 hex digits) gives one swarm with its peers.

// SwarmList is the answer of /api/swarms.
type SwarmList struct {
	// Time is when the tracker answered.
	Time time.Time `json:"time"`
	// Swarms are the swarms on the board, most recently announced first.
	Swarms []SwarmSummary `json:"swarms"`
	// Deploys are the deploys under way, newest first, then the finished
	// ones the tracker remembers, newest first.
	Deploys []Deploy `json:"deploys"`
}

// SwarmSummary is one swarm: a torrent and the peers announcing it.
type SwarmSummary struct {
	InfoHash string `json:"info_hash"` // 40 lowercase hex digits
	// Name is the torrent's name (for murder, the tag plus .tgz), from the
	// allow directory or from murder's announces; "" when unknown.
	Name string `json:"name"`
	// Size is the torrent's size in bytes: exact with an allow directory,
	// else the most any peer had left to download; 0 when unknown.
	Size int64 `json:"size"`
	// Seeders and Leechers count the peers this tracker knows that have
	// the whole torrent and those that lack part of it.
	Seeders  int `json:"seeders"`
	Leechers int `json:"leechers"`
	// Completed counts the downloads completed (the scrape's "downloaded").
	Completed int `json:"completed"`
	// Progress is the peers' mean share of the torrent, 0 to 1, stopped
	// peers included.
	Progress float64 `json:"progress"`
	// DownloadRate and UploadRate sum the peers' rates, bytes per second,
	// over their last two announces.
	DownloadRate float64   `json:"download_rate"`
	UploadRate   float64   `json:"upload_rate"`
	LastAnnounce time.Time `json:"last_announce"`
	// Deploy is the swarm's deploy under way, or its last one; nil when
	// no peer ever downloaded it here.
	Deploy *Deploy `json:"deploy,omitempty"`
}

// Deploy is one deploy of a swarm: from the first announce of a peer that
// lacked something until none is left.
type Deploy struct {
	InfoHash string    `json:"info_hash"`
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Started  time.Time `json:"started"`
	// Finished is when the last host completed; nil while under way.
	Finished *time.Time `json:"finished,omitempty"`
	// Seconds is the deploy's duration, so far while under way.
	Seconds float64 `json:"seconds"`
	// Hosts counts the peers that completed during the deploy.
	Hosts int `json:"hosts"`
}

// SwarmDetail is the answer of /api/swarms/INFOHASH.
type SwarmDetail struct {
	SwarmSummary
	// Peers are the swarm's peers, stopped ones included, by datacenter,
	// rack, then address.
	Peers []PeerStatus `json:"peers"`
	// Done is the deploy's chart: the n-th host completed Seconds after
	// the deploy started.
	Done []DonePoint `json:"done"`
}

// PeerStatus is one peer as its announces report it.
type PeerStatus struct {
	PeerID  string `json:"peer_id"` // 40 hex digits
	Address string `json:"address"` // host:port other peers dial
	// Datacenter and Rack are where the tracker places the peer (from
	// the peer's announce or --topology); "" when unknown.
	Datacenter string `json:"datacenter,omitempty"`
	Rack       string `json:"rack,omitempty"`
	// State is "downloading", "seeding" (has the whole torrent) or
	// "stopped": it left the swarm, or missed two announce intervals. A
	// stopped peer is shown with its last progress until the swarm leaves
	// the board.
	State string `json:"state"`
	// Seeder is true when the peer has (or had, when stopped) the whole
	// torrent.
	Seeder bool `json:"seeder"`
	// Progress is the share of the torrent the peer has, 0 to 1.
	Progress   float64 `json:"progress"`
	Left       int64   `json:"left"`
	Downloaded int64   `json:"downloaded"`
	Uploaded   int64   `json:"uploaded"`
	// DownloadRate and UploadRate are bytes per second over the peer's
	// last two announces.
	DownloadRate  float64   `json:"download_rate"`
	UploadRate    float64   `json:"upload_rate"`
	FirstAnnounce time.Time `json:"first_announce"`
	LastAnnounce  time.Time `json:"last_announce"`
}

// DonePoint is one host's completion in a deploy.
type DonePoint struct {
	Seconds float64 `json:"seconds"`
	Hosts   int     `json:"hosts"`
}

// apiSwarms serves /api/swarms.
func (s *Server) apiSwarms(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	swarms, deploys := s.board.list(now)
	if err := s.addCounts(r.Context(), swarms); err != nil {
		s.log.Warn("store scrape failed", "err", err)
		http.Error(w, "tracker store unavailable, retry later", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, SwarmList{Time: now, Swarms: swarms, Deploys: orEmpty(deploys)})
}

// apiSwarm serves /api/swarms/INFOHASH.
func (s *Server) apiSwarm(w http.ResponseWriter, r *http.Request, hexHash string) {
	ih, err := ParseInfoHash(hexHash)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d, ok := s.board.swarm(ih, time.Now())
	if !ok {
		http.Error(w, "no such swarm on this tracker", http.StatusNotFound)
		return
	}
	one := []SwarmSummary{d.SwarmSummary}
	if err := s.addCounts(r.Context(), one); err != nil {
		s.log.Warn("store scrape failed", "err", err)
		http.Error(w, "tracker store unavailable, retry later", http.StatusServiceUnavailable)
		return
	}
	d.SwarmSummary = one[0]
	writeJSON(w, d)
}

// addCounts sets the swarms' seeders, leechers and completed downloads
// from the store, which counts the peers of every tracker replica.
func (s *Server) addCounts(ctx context.Context, swarms []SwarmSummary) error {
	if len(swarms) == 0 {
		return nil
	}
	hashes := make([][20]byte, len(swarms))
	for i, sw := range swarms {
		hashes[i], _ = ParseInfoHash(sw.InfoHash)
	}
	stats, err := s.store.Scrape(ctx, hashes)
	if err != nil {
		return err
	}
	for i := range swarms {
		if st, ok := stats[hashes[i]]; ok {
			swarms[i].Seeders, swarms[i].Leechers, swarms[i].Completed = st.Complete, st.Incomplete, st.Downloaded
		}
	}
	return nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// ParseInfoHash reads an info hash written as 40 hex digits.
func ParseInfoHash(s string) ([20]byte, error) {
	var ih [20]byte
	if len(s) != 40 {
		return ih, fmt.Errorf("tracker: info hash %q: want 40 hex digits", s)
	}
	if _, err := hex.Decode(ih[:], []byte(s)); err != nil {
		return ih, fmt.Errorf("tracker: info hash %q: want 40 hex digits", s)
	}
	return ih, nil
}

// APIClient reads a murder tracker's JSON API.
type APIClient struct {
	// Base is the tracker's URL, e.g. http://tracker:8998.
	Base string
	// HTTP is the client; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// NewAPIClient returns a client of the tracker at hostPort (HOST:PORT, or
// a URL such as http://HOST:PORT/announce, whose path is dropped).
func NewAPIClient(hostPort string) *APIClient {
	base := hostPort
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if i := strings.Index(base[strings.Index(base, "://")+3:], "/"); i >= 0 {
		base = base[:strings.Index(base, "://")+3+i]
	}
	return &APIClient{Base: base}
}

// Swarms fetches /api/swarms.
func (c *APIClient) Swarms(ctx context.Context) (*SwarmList, error) {
	var l SwarmList
	if err := c.get(ctx, "/api/swarms", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Swarm fetches /api/swarms/INFOHASH.
func (c *APIClient) Swarm(ctx context.Context, infoHash string) (*SwarmDetail, error) {
	var d SwarmDetail
	if err := c.get(ctx, "/api/swarms/"+infoHash, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ErrNoSwarm is returned by APIClient.Swarm for a swarm the tracker does
// not show.
var ErrNoSwarm = errors.New("tracker: no such swarm on this tracker")

func (c *APIClient) get(ctx context.Context, path string, v any) error {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("tracker: GET %s: %w", c.Base+path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/api/swarms/"):
		return ErrNoSwarm
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("tracker: GET %s: %s: %s (is it a murder tracker?)", c.Base+path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("tracker: GET %s: %w (is it a murder tracker?)", c.Base+path, err)
	}
	return nil
}
