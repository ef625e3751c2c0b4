package tracker

import (
	"errors"
	"strconv"
	"strings"
)

// announceQuery is an announce as the server reads it from the URL.
type announceQuery struct {
	// AnnounceRequest.NumWant is -1 when the client did not ask for a
	// number.
	AnnounceRequest
	compact  bool
	noPeerID bool
	// places asks for murder's place and places keys in the reply.
	places bool
	// hasKey tells that the announce carries a key (BEP 7), whatever its
	// form; keySum is its digest (see ownerOf).
	hasKey bool
	keySum uint64
}

// maxKeyLen bounds the key parameter; a longer one is ignored.
const maxKeyLen = 64

// queryError is a bad request; its text becomes the failure reason.
type queryError string

func (e queryError) Error() string { return string(e) }

// maxQueryParams bounds the work spent on one query string.
const maxQueryParams = 64

// parseAnnounceQuery reads an announce query string (BEP 3). info_hash and
// peer_id must decode to 20 bytes, port to 1-65535, and uploaded, downloaded
// and left, when present, to integers; left is required. Unknown parameters
// and events are ignored; compact defaults to on.
func parseAnnounceQuery(raw string) (announceQuery, error) {
	q := announceQuery{compact: true}
	q.NumWant = -1
	var haveHash, havePeer, havePort, haveLeft bool
	var buf [20]byte
	n := 0
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		if n++; n > maxQueryParams {
			return q, queryError("too many query parameters")
		}
		key, val, _ := strings.Cut(kv, "=")
		switch key {
		case "info_hash", "peer_id":
			b, err := unescapeInto(buf[:0], val, 20)
			if err != nil || len(b) != 20 {
				return q, queryError("invalid " + key + ": want 20 bytes")
			}
			if key == "info_hash" {
				if !haveHash {
					q.InfoHash = [20]byte(b)
				}
				haveHash = true
			} else {
				q.PeerID = [20]byte(b)
				havePeer = true
			}
		case "port":
			p, err := strconv.ParseUint(val, 10, 16)
			if err != nil || p == 0 {
				return q, queryError("invalid port")
			}
			q.Port = int(p)
			havePort = true
		case "uploaded", "downloaded", "left":
			c, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return q, queryError("invalid " + key + ": not an integer")
			}
			switch key {
			case "uploaded":
				q.Uploaded = c
			case "downloaded":
				q.Downloaded = c
			default:
				q.Left = c
				haveLeft = true
			}
		case "event":
			switch val {
			case EventStarted, EventCompleted, EventStopped:
				q.Event = val
			default:
				q.Event = EventNone
			}
		case "compact":
			q.compact = val != "0"
		case "no_peer_id":
			q.noPeerID = val == "1"
		case "numwant":
			if w, err := strconv.Atoi(val); err == nil && w >= 0 {
				q.NumWant = w
			}
		case "ip":
			b, err := unescapeInto(nil, val, 64)
			if err == nil {
				q.IP = string(b)
			}
		case "name":
			// Longer names are cut (by CleanName), not refused: the name
			// only labels the swarm.
			b, err := unescapeInto(nil, val, 4*MaxNameLen)
			if err == nil || len(b) == 4*MaxNameLen {
				q.Name = CleanName(string(b))
			}
		case "key":
			var kb [maxKeyLen]byte
			if b, err := unescapeInto(kb[:0], val, maxKeyLen); err == nil && len(b) > 0 {
				q.hasKey, q.keySum = true, keyDigest(b)
			}
			if k, err := strconv.ParseUint(val, 16, 32); err == nil {
				q.Key = uint32(k)
			}
		case "datacenter", "rack":
			b, err := unescapeInto(buf[:0], val, MaxPlaceName)
			if err == nil {
				err = CheckPlaceName(key, string(b))
			}
			if err != nil {
				return q, queryError("invalid " + key + ": want 1 to 64 letters, digits, '-', '_' or '.'")
			}
			if key == "datacenter" {
				q.Place.Datacenter = string(b)
			} else {
				q.Place.Rack = string(b)
			}
		case "places":
			q.places = val == "1"
		}
	}
	switch {
	case !haveHash:
		return q, queryError("missing info_hash")
	case !havePeer:
		return q, queryError("missing peer_id")
	case !havePort:
		return q, queryError("missing port")
	case !haveLeft:
		return q, queryError("missing left")
	case q.Place.Rack != "" && q.Place.Datacenter == "":
		return q, queryError("rack without datacenter")
	}
	return q, nil
}

// parseScrapeQuery returns the info hashes of a scrape query, at most limit.
func parseScrapeQuery(raw string, limit int) ([][20]byte, error) {
	var out [][20]byte
	var buf [20]byte
	n := 0
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if n++; n > limit+maxQueryParams {
			return nil, queryError("too many query parameters")
		}
		key, val, _ := strings.Cut(kv, "=")
		if key != "info_hash" {
			continue
		}
		b, err := unescapeInto(buf[:0], val, 20)
		if err != nil || len(b) != 20 {
			return nil, queryError("invalid info_hash: want 20 bytes")
		}
		if len(out) >= limit {
			return nil, queryError("too many info hashes")
		}
		out = append(out, [20]byte(b))
	}
	return out, nil
}

var errBadEscape = errors.New("bad percent escape")

// unescapeInto percent-decodes s into dst, byte by byte. '+' stays a plus:
// binary parameters are escaped per byte, never form-encoded. It fails when
// the result would exceed limit bytes.
func unescapeInto(dst []byte, s string, limit int) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if len(dst) >= limit {
			return dst, errBadEscape
		}
		c := s[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(s) {
			return dst, errBadEscape
		}
		h, l := unhex(s[i+1]), unhex(s[i+2])
		if h < 0 || l < 0 {
			return dst, errBadEscape
		}
		dst = append(dst, byte(h<<4|l))
		i += 2
	}
	return dst, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
