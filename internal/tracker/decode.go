package tracker

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/murder-deploy/murder/internal/bencode"
)

// maxDictPeers bounds how many peers of a dictionary-form reply are kept.
const maxDictPeers = 10000

// DecodeAnnounceResponse decodes a bencoded announce reply. A reply with a
// "failure reason" yields a *FailureError. Peers come from the compact or the
// dictionary form of "peers" and from "peers6"; dictionary entries whose ip
// is not a literal address are skipped.
func DecodeAnnounceResponse(body []byte) (*AnnounceResponse, error) {
	var v any
	if err := bencode.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("tracker: decode announce reply: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("tracker: announce reply is not a dictionary")
	}
	if fr, ok := d["failure reason"]; ok {
		s, _ := fr.(string)
		return nil, &FailureError{Reason: s}
	}
	resp := &AnnounceResponse{}
	iv, ok := d["interval"].(int64)
	if !ok || iv < 0 {
		return nil, fmt.Errorf("tracker: announce reply has no valid interval")
	}
	resp.Interval = seconds(iv)
	if mi, ok := d["min interval"].(int64); ok && mi >= 0 {
		resp.MinInterval = seconds(mi)
	}
	resp.Complete = nonNegInt(d["complete"])
	resp.Incomplete = nonNegInt(d["incomplete"])
	resp.Warning, _ = d["warning message"].(string)
	resp.TrackerID, _ = d["tracker id"].(string)

	var err error
	switch p := d["peers"].(type) {
	case nil:
	case string:
		if resp.Peers, err = decodeCompact4(resp.Peers, []byte(p)); err != nil {
			return nil, err
		}
	case []any:
		for i, e := range p {
			if i >= maxDictPeers {
				break
			}
			if ap, ok := dictPeer(e); ok {
				resp.Peers = append(resp.Peers, ap)
			}
		}
	default:
		return nil, fmt.Errorf("tracker: announce reply peers is neither a string nor a list")
	}
	switch p := d["peers6"].(type) {
	case nil:
	case string:
		if resp.Peers, err = decodeCompact6(resp.Peers, []byte(p)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("tracker: announce reply peers6 is not a string")
	}
	return resp, nil
}

// dictPeer reads one {ip, port, peer id} entry of a dictionary-form reply.
func dictPeer(e any) (netip.AddrPort, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return netip.AddrPort{}, false
	}
	ipStr, _ := m["ip"].(string)
	port, _ := m["port"].(int64)
	ip, err := netip.ParseAddr(ipStr)
	if err != nil || port <= 0 || port > 65535 || ip.Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// DecodeScrapeResponse decodes a bencoded scrape reply (BEP 48) into counts
// per info hash.
func DecodeScrapeResponse(body []byte) (map[[20]byte]ScrapeStats, error) {
	var v any
	if err := bencode.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("tracker: decode scrape reply: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("tracker: scrape reply is not a dictionary")
	}
	if fr, ok := d["failure reason"]; ok {
		s, _ := fr.(string)
		return nil, &FailureError{Reason: s}
	}
	files, ok := d["files"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("tracker: scrape reply has no files dictionary")
	}
	out := make(map[[20]byte]ScrapeStats, len(files))
	for k, fv := range files {
		if len(k) != 20 {
			return nil, fmt.Errorf("tracker: scrape reply key of %d bytes is not an info hash", len(k))
		}
		f, ok := fv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("tracker: scrape reply entry is not a dictionary")
		}
		out[[20]byte([]byte(k))] = ScrapeStats{
			Complete:   nonNegInt(f["complete"]),
			Incomplete: nonNegInt(f["incomplete"]),
			Downloaded: nonNegInt(f["downloaded"]),
		}
	}
	return out, nil
}

// seconds converts a bencoded count of seconds, capping absurd values at a day.
func seconds(n int64) time.Duration {
	const maxSeconds = 24 * 60 * 60
	if n > maxSeconds {
		n = maxSeconds
	}
	return time.Duration(n) * time.Second
}

func nonNegInt(v any) int {
	n, ok := v.(int64)
	if !ok || n < 0 {
		return 0
	}
	if n > 1<<31-1 {
		return 1<<31 - 1
	}
	return int(n)
}
