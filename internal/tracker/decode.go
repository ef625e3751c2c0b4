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
	// kept lists, for the dictionary form, which entries became Peers, so
	// that murder's places line up with them.
	var kept []int
	listed := 0
	switch p := d["peers"].(type) {
	case nil:
	case string:
		if resp.Peers, err = decodeCompact4(resp.Peers, []byte(p)); err != nil {
			return nil, err
		}
		listed = len(resp.Peers)
	case []any:
		kept = []int{}
		listed = len(p)
		for i, e := range p {
			if i >= maxDictPeers {
				break
			}
			if ap, ok := dictPeer(e); ok {
				resp.Peers = append(resp.Peers, ap)
				kept = append(kept, i)
			}
		}
	default:
		return nil, fmt.Errorf("tracker: announce reply peers is neither a string nor a list")
	}
	switch p := d["peers6"].(type) {
	case nil:
	case string:
		n := len(resp.Peers)
		if resp.Peers, err = decodeCompact6(resp.Peers, []byte(p)); err != nil {
			return nil, err
		}
		for i := n; kept != nil && i < len(resp.Peers); i++ {
			kept = append(kept, listed+i-n)
		}
		listed += len(resp.Peers) - n
	default:
		return nil, fmt.Errorf("tracker: announce reply peers6 is not a string")
	}
	decodePlaces(resp, d, kept, listed)
	return resp, nil
}

// decodePlaces reads murder's "place" and "places" keys into resp. places
// must list one place per peer entry of the reply (listed); kept, unless
// nil, maps resp.Peers to those entries. Keys that do not fit are ignored,
// as a reply without them would be; a name that is not valid is an
// unknown place.
func decodePlaces(resp *AnnounceResponse, d map[string]any, kept []int, listed int) {
	if s, ok := d["place"].(string); ok {
		resp.Place, _ = ParsePlace(s)
	}
	list, ok := d["places"].([]any)
	if !ok || len(list) != listed {
		return
	}
	resp.Places = make([]Place, len(resp.Peers))
	for i := range resp.Places {
		j := i
		if kept != nil {
			j = kept[i]
		}
		if s, ok := list[j].(string); ok {
			resp.Places[i], _ = ParsePlace(s)
		}
	}
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
