package tracker

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	qHash = "info_hash=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14"
	qPeer = "&peer_id=-MU0001-%2B%20abcdefghij"
)

func TestParseAnnounceQuery(t *testing.T) {
	wantHash := [20]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	wantPeer := hash20("-MU0001-+ abcdefghij")
	tests := []struct {
		name    string
		raw     string
		want    announceQuery
		wantErr string
	}{
		{
			name: "full",
			raw:  qHash + qPeer + "&port=6881&uploaded=10&downloaded=20&left=30&event=started&compact=1&numwant=80&key=1A2b&ip=198.18.0.7&no_peer_id=1",
			want: announceQuery{AnnounceRequest: AnnounceRequest{InfoHash: wantHash, PeerID: wantPeer, Port: 6881,
				Uploaded: 10, Downloaded: 20, Left: 30, Event: EventStarted, NumWant: 80, Key: 0x1a2b, IP: "198.18.0.7"},
				compact: true, noPeerID: true, hasKey: true, keySum: keyDigest([]byte("1A2b"))},
		},
		{
			name: "minimal, unknown parameters and events ignored",
			raw:  qHash + qPeer + "&port=1&left=0&event=paused&supportcrypto=1&corrupt=0&redundant=0&&trackerid=x",
			want: announceQuery{AnnounceRequest: AnnounceRequest{InfoHash: wantHash, PeerID: wantPeer, Port: 1, NumWant: -1}, compact: true},
		},
		{
			name: "dictionary form, bad numwant falls back",
			raw:  qHash + qPeer + "&port=65535&left=5&compact=0&numwant=lots",
			want: announceQuery{AnnounceRequest: AnnounceRequest{InfoHash: wantHash, PeerID: wantPeer, Port: 65535, Left: 5, NumWant: -1}},
		},
		{
			name: "murder's name parameter, escaped",
			raw:  qHash + qPeer + "&port=1&left=0&name=%3Cimg%20src%3Dx%3E%E2%9C%93+a.tgz",
			want: announceQuery{AnnounceRequest: AnnounceRequest{InfoHash: wantHash, PeerID: wantPeer, Port: 1, NumWant: -1,
				Name: "<img src=x>✓+a.tgz"}, compact: true},
		},
		{
			name: "name cut to MaxNameLen, control characters dropped",
			raw:  qHash + qPeer + "&port=1&left=0&name=%1B%5B2J" + strings.Repeat("x", 1000),
			want: announceQuery{AnnounceRequest: AnnounceRequest{InfoHash: wantHash, PeerID: wantPeer, Port: 1, NumWant: -1,
				Name: "[2J" + strings.Repeat("x", MaxNameLen-3)}, compact: true},
		},
		{
			name: "bad escape in name: no name",
			raw:  qHash + qPeer + "&port=1&left=0&name=a%zz",
			want: announceQuery{AnnounceRequest: AnnounceRequest{InfoHash: wantHash, PeerID: wantPeer, Port: 1, NumWant: -1}, compact: true},
		},
		{name: "empty", raw: "", wantErr: "missing info_hash"},
		{name: "no peer id", raw: qHash + "&port=1&left=0", wantErr: "missing peer_id"},
		{name: "no port", raw: qHash + qPeer + "&left=0", wantErr: "missing port"},
		{name: "no left", raw: qHash + qPeer + "&port=1", wantErr: "missing left"},
		{name: "short info hash", raw: "info_hash=abc" + qPeer + "&port=1&left=0", wantErr: "invalid info_hash: want 20 bytes"},
		{name: "long info hash", raw: "info_hash=abcdefghijklmnopqrstu" + qPeer + "&port=1&left=0", wantErr: "invalid info_hash: want 20 bytes"},
		{name: "bad escape", raw: "info_hash=%zz%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13" + qPeer + "&port=1&left=0", wantErr: "invalid info_hash: want 20 bytes"},
		{name: "truncated escape", raw: qPeer[1:] + "&info_hash=0123456789012345678%4", wantErr: "invalid info_hash: want 20 bytes"},
		{name: "port zero", raw: qHash + qPeer + "&port=0&left=0", wantErr: "invalid port"},
		{name: "port too big", raw: qHash + qPeer + "&port=65536&left=0", wantErr: "invalid port"},
		{name: "port negative", raw: qHash + qPeer + "&port=-1&left=0", wantErr: "invalid port"},
		{name: "uploaded not a number", raw: qHash + qPeer + "&port=1&left=0&uploaded=1e3", wantErr: "invalid uploaded: not an integer"},
		{name: "left not a number", raw: qHash + qPeer + "&port=1&left=", wantErr: "invalid left: not an integer"},
		{name: "too many parameters", raw: strings.Repeat("x=1&", 100) + qHash + qPeer + "&port=1&left=0", wantErr: "too many query parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAnnounceQuery(tt.raw)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	long := strings.Repeat("é", MaxNameLen) // 2 bytes each
	tests := []struct{ in, want string }{
		{"demo.tgz", "demo.tgz"},
		{"<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"},
		{"a\x1b[31mred\x00\x7f\u0085b", "a[31mredb"},
		{"bad\xff\xfeutf8", "badutf8"},
		{long, long[:MaxNameLen]},
		{"x" + long, "x" + long[:MaxNameLen-2]}, // never half a rune
		{"", ""},
	}
	for _, tt := range tests {
		got := CleanName(tt.in)
		if got != tt.want {
			t.Errorf("CleanName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if again := CleanName(got); again != got {
			t.Errorf("CleanName(%q) = %q, not clean: cleaned again %q", tt.in, got, again)
		}
	}
}

func FuzzCleanName(f *testing.F) {
	f.Add("demo.tgz")
	f.Add("a\x1b[31m\xff")
	f.Fuzz(func(t *testing.T, s string) {
		c := CleanName(s)
		if len(c) > MaxNameLen || !utf8.ValidString(c) || CleanName(c) != c {
			t.Fatalf("CleanName(%q) = %q: too long, invalid or not stable", s, c)
		}
	})
}

func TestParseScrapeQuery(t *testing.T) {
	got, err := parseScrapeQuery(qHash+"&info_hash=abcdefghijklmnopqrst&x=1", 4)
	if err != nil || len(got) != 2 || got[1] != hash20("abcdefghijklmnopqrst") || got[0][19] != 20 {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := parseScrapeQuery(strings.Repeat("info_hash=abcdefghijklmnopqrst&", 5), 4); err == nil {
		t.Error("5 info hashes with a limit of 4: got no error")
	}
	if _, err := parseScrapeQuery("info_hash=short", 4); err == nil {
		t.Error("short info hash: got no error")
	}
	if got, err := parseScrapeQuery("", 4); err != nil || len(got) != 0 {
		t.Errorf("empty scrape: got %v, %v", got, err)
	}
}

// readLines returns the non-comment lines of a testdata file.
func readLines(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestParseRealQueries parses announces captured from real clients.
func TestParseRealQueries(t *testing.T) {
	lines := readLines(t, "announce-queries.txt")
	if len(lines) == 0 {
		t.Fatal("no queries in testdata")
	}
	for _, l := range lines {
		client, raw, _ := strings.Cut(l, " ")
		if _, err := parseAnnounceQuery(raw); err != nil {
			t.Errorf("%s: %v", client, err)
		}
	}
}

// FuzzParseAnnounceQuery checks that parsing never panics and that a parsed
// announce survives being written by the client and parsed again.
func FuzzParseAnnounceQuery(f *testing.F) {
	for _, l := range readLines(f, "announce-queries.txt") {
		_, raw, _ := strings.Cut(l, " ")
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseAnnounceQuery(raw)
		if err != nil {
			return
		}
		req := q.AnnounceRequest
		if req.Event == EventStopped {
			req.NumWant = 0
		}
		again, err := parseAnnounceQuery(string(appendQuery(nil, &req)))
		if err != nil {
			t.Fatalf("re-encoded query does not parse: %v", err)
		}
		want := req
		if want.NumWant <= 0 && want.Event != EventStopped {
			want.NumWant = -1
		}
		if again.AnnounceRequest != want {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", again.AnnounceRequest, want)
		}
	})
}
