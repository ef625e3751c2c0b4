package tracker

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeScrapeResponse(t *testing.T) {
	ih := hash20("abcdefghijklmnopqrst")
	tests := []struct {
		name    string
		body    string
		want    map[[20]byte]ScrapeStats
		wantErr string
	}{
		{"one torrent", "d5:filesd20:abcdefghijklmnopqrstd8:completei2e10:downloadedi5e10:incompletei3eeee",
			map[[20]byte]ScrapeStats{ih: {Complete: 2, Incomplete: 3, Downloaded: 5}}, ""},
		{"no torrent, with flags", "d5:filesde5:flagsd20:min_request_intervali5eee", map[[20]byte]ScrapeStats{}, ""},
		{"negative counts read as 0", "d5:filesd20:abcdefghijklmnopqrstd8:completei-2eeee", map[[20]byte]ScrapeStats{ih: {}}, ""},
		{"failure reason", "d14:failure reason9:full scrae", nil, "failure reason"},
		{"short key", "d5:filesd3:abcd8:completei1eeee", nil, "not an info hash"},
		{"entry not a dictionary", "d5:filesd20:abcdefghijklmnopqrsti1eee", nil, "not a dictionary"},
		{"no files", "d5:flagsdee", nil, "no files"},
		{"not bencode", "<html>", nil, "decode scrape reply"},
		{"a list", "le", nil, "not a dictionary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeScrapeResponse([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseScrapeQuery checks that parsing a scrape query never panics,
// keeps to its limit, and that the info hashes it read survive being
// written as a query and parsed again.
func FuzzParseScrapeQuery(f *testing.F) {
	f.Add(qHash + "&info_hash=abcdefghijklmnopqrst")
	f.Add("")
	f.Add("info_hash=%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		const limit = 4
		hashes, err := parseScrapeQuery(raw, limit)
		if err != nil {
			return
		}
		if len(hashes) > limit {
			t.Fatalf("%d info hashes past a limit of %d", len(hashes), limit)
		}
		var q []byte
		for i, h := range hashes {
			if i > 0 {
				q = append(q, '&')
			}
			q = append(q, "info_hash="...)
			q = appendEscaped(q, h[:])
		}
		again, err := parseScrapeQuery(string(q), limit)
		if err != nil {
			t.Fatalf("re-encoded query %q does not parse: %v", q, err)
		}
		if len(again) != len(hashes) {
			t.Fatalf("round trip: got %d info hashes, want %d", len(again), len(hashes))
		}
		for i := range hashes {
			if again[i] != hashes[i] {
				t.Fatalf("round trip: info hash %d is %x, want %x", i, again[i], hashes[i])
			}
		}
	})
}

// FuzzDecodeScrapeResponse checks that decoding a scrape reply never
// panics and that what it decoded survives the server's encoding.
func FuzzDecodeScrapeResponse(f *testing.F) {
	real, err := os.ReadFile(filepath.Join("testdata", "replies", "opentracker-scrape.bencode"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(appendScrapeReply(nil, map[[20]byte]ScrapeStats{hash20("x"): {Complete: 1, Incomplete: 2, Downloaded: 3}}, 5e9))
	f.Add(appendFailure(nil, "full scrape is off"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeScrapeResponse(body)
		if err != nil {
			return
		}
		again, err := DecodeScrapeResponse(appendScrapeReply(nil, m, 0))
		if err != nil {
			t.Fatalf("re-encoded reply does not decode: %v", err)
		}
		if !maps.Equal(again, m) {
			t.Fatalf("round trip: got %v, want %v", again, m)
		}
	})
}
