package tracker

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxReplyBytes bounds how much of a tracker's reply the client reads.
const maxReplyBytes = 8 << 20

// DefaultClientTimeout bounds one request to one tracker when
// ClientConfig.Timeout is zero. A tracker answers in milliseconds, so a
// lost exchange is better retried soon than waited on: a peer that has not
// announced yet has no other way to find the swarm.
const DefaultClientTimeout = 5 * time.Second

// ClientConfig configures a Client. The zero value works.
type ClientConfig struct {
	// HTTPClient sends the requests; nil uses a client over
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Timeout bounds each request to one tracker; 0 means
	// DefaultClientTimeout.
	Timeout time.Duration
	// Logger receives failover notes at debug level; nil discards them.
	Logger *slog.Logger
}

// Client announces to the trackers of one torrent. Trackers are grouped in
// tiers (BEP 12): the client tries the tiers in order and the trackers of a
// tier in a random order, and moves a tracker that answered to the front of
// its tier. A Client is safe for concurrent use.
//
// Announces whose Key is 0 carry a random key of the client's own (BEP 7),
// the same for all its announces, so that only this client can change or
// remove its peer on murder's tracker.
type Client struct {
	hc      *http.Client
	timeout time.Duration
	log     *slog.Logger
	key     uint32

	mu    sync.Mutex
	tiers [][]string
	ids   map[string]string // announce URL -> tracker id
}

// NewClient returns a client for the given announce-list tiers. Empty URLs
// and empty tiers are dropped; each tier is shuffled once, as BEP 12 asks.
func NewClient(tiers [][]string, cfg ClientConfig) *Client {
	c := &Client{hc: cfg.HTTPClient, timeout: cfg.Timeout, log: cfg.Logger}
	var kb [4]byte
	crand.Read(kb[:])
	c.key = binary.LittleEndian.Uint32(kb[:]) | 1
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultClientTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, tier := range tiers {
		var t []string
		for _, u := range tier {
			if u = strings.TrimSpace(u); u != "" {
				t = append(t, u)
			}
		}
		if len(t) == 0 {
			continue
		}
		rand.Shuffle(len(t), func(i, j int) { t[i], t[j] = t[j], t[i] })
		c.tiers = append(c.tiers, t)
	}
	return c
}

// Tiers returns the client's current tier order.
func (c *Client) Tiers() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]string, len(c.tiers))
	for i, t := range c.tiers {
		out[i] = slices.Clone(t)
	}
	return out
}

// promote moves u to the front of tier ti (BEP 12).
func (c *Client) promote(ti int, u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ti >= len(c.tiers) {
		return
	}
	t := c.tiers[ti]
	i := slices.Index(t, u)
	if i <= 0 {
		return
	}
	copy(t[1:i+1], t[:i])
	t[0] = u
}

// Announce sends req to the first tracker that answers, trying every tracker
// of every tier in order. A tracker's "failure reason" counts as a failure
// too; when all fail the error joins every tracker's error, so
// errors.Is(err, ErrFailure) tells whether any tracker refused.
func (c *Client) Announce(ctx context.Context, req AnnounceRequest) (*AnnounceResponse, error) {
	if req.Port <= 0 || req.Port > 65535 {
		return nil, fmt.Errorf("tracker: announce: port %d out of range", req.Port)
	}
	if req.Key == 0 {
		req.Key = c.key
	}
	query := string(appendQuery(nil, &req))
	var resp *AnnounceResponse
	err := c.each(ctx, "announce", func(u string) (string, error) { return u, nil },
		func(ctx context.Context, u string) error {
			q := query
			c.mu.Lock()
			if id := c.ids[u]; id != "" {
				q += "&trackerid=" + string(appendEscaped(nil, []byte(id)))
			}
			c.mu.Unlock()
			body, err := c.get(ctx, u, q)
			if err != nil {
				return err
			}
			r, err := DecodeAnnounceResponse(body)
			if err != nil {
				return err
			}
			if r.TrackerID != "" {
				c.mu.Lock()
				if c.ids == nil {
					c.ids = make(map[string]string)
				}
				c.ids[u] = r.TrackerID
				c.mu.Unlock()
			}
			resp = r
			return nil
		})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// ScrapeQuery returns the query string of a scrape of the given torrents
// (without '?'), each info hash escaped byte by byte.
func ScrapeQuery(infoHashes ...[20]byte) string {
	var q []byte
	for i, h := range infoHashes {
		if i > 0 {
			q = append(q, '&')
		}
		q = append(q, "info_hash="...)
		q = appendEscaped(q, h[:])
	}
	return string(q)
}

// Scrape asks the trackers for the counts of the given torrents (BEP 48);
// with no info hash it asks for every torrent the tracker knows. Trackers
// whose announce URL has no scrape counterpart are skipped.
func (c *Client) Scrape(ctx context.Context, infoHashes ...[20]byte) (map[[20]byte]ScrapeStats, error) {
	query := ScrapeQuery(infoHashes...)
	var out map[[20]byte]ScrapeStats
	err := c.each(ctx, "scrape", ScrapeURL, func(ctx context.Context, u string) error {
		body, err := c.get(ctx, u, query)
		if err != nil {
			return err
		}
		m, err := DecodeScrapeResponse(body)
		if err != nil {
			return err
		}
		out = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Alive checks that a tracker answers. It scrapes one info hash (all
// zeros) rather than every torrent, so the reply stays small however many
// torrents the tracker holds and whether or not it allows full scrapes; a
// failure reason (from a tracker that tracks only some torrents) is an
// answer too.
func (c *Client) Alive(ctx context.Context) error {
	_, err := c.Scrape(ctx, [20]byte{})
	if err != nil && errors.Is(err, ErrFailure) && ctx.Err() == nil {
		return nil
	}
	return err
}

// each runs try on the trackers in BEP 12 order until one succeeds.
func (c *Client) each(ctx context.Context, what string, mapURL func(string) (string, error),
	try func(ctx context.Context, u string) error) error {
	tiers := c.Tiers()
	if len(tiers) == 0 {
		return fmt.Errorf("tracker: %s: no tracker URLs", what)
	}
	var errs []error
	for ti, tier := range tiers {
		for _, u := range tier {
			target, err := mapURL(u)
			if err == nil {
				err = try(ctx, target)
			}
			if err == nil {
				c.promote(ti, u)
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("tracker: %s: %w", what, ctx.Err())
			}
			c.log.Debug("tracker did not answer", "op", what, "url", u, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
		}
	}
	return fmt.Errorf("tracker: %s failed on every tracker: %w", what, errors.Join(errs...))
}

// get fetches base?query and returns the body, bounded in size and time.
func (c *Client) get(ctx context.Context, base, query string) ([]byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("bad tracker URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("unsupported tracker scheme %q (want http or https)", u.Scheme)
	}
	full := base
	if query != "" {
		sep := "&"
		switch {
		case strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&"):
			sep = ""
		case u.RawQuery == "":
			sep = "?"
		}
		full = base + sep + query
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, full, nil)
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("User-Agent", "murder")
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxReplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if len(body) > maxReplyBytes {
		return nil, fmt.Errorf("reply larger than %d bytes", maxReplyBytes)
	}
	if hresp.StatusCode != http.StatusOK {
		// Some trackers send a failure reason with an error status.
		if _, derr := DecodeAnnounceResponse(body); errors.Is(derr, ErrFailure) {
			return nil, derr
		}
		return nil, fmt.Errorf("HTTP status %s", hresp.Status)
	}
	return body, nil
}

// ScrapeURL derives a tracker's scrape URL from its announce URL (BEP 48):
// the last path element must start with "announce", which becomes "scrape".
func ScrapeURL(announce string) (string, error) {
	u, err := url.Parse(announce)
	if err != nil {
		return "", fmt.Errorf("tracker: bad announce URL: %w", err)
	}
	i := strings.LastIndexByte(u.Path, '/')
	if i < 0 || !strings.HasPrefix(u.Path[i+1:], "announce") {
		return "", fmt.Errorf("tracker: announce URL %q has no scrape counterpart", announce)
	}
	u.Path = u.Path[:i+1] + "scrape" + strings.TrimPrefix(u.Path[i+1:], "announce")
	u.RawPath = ""
	return u.String(), nil
}
