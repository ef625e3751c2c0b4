package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/sshsig"
	"github.com/murder-deploy/murder/internal/testenv"
)

// sshKey makes an ed25519 key with ssh-keygen and returns its path and
// an allowed_signers line for it.
func sshKey(t *testing.T, dir, name, principal string) (key, line string) {
	key, pub := testenv.SigningKey(t, dir, name, "")
	return key, principal + ` namespaces="murder" ` + pub + "\n"
}

func writeFile(t *testing.T, path, s string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPeerSigned downloads a torrent signed by create, checked against
// allowed signers.
func TestPeerSigned(t *testing.T) {
	dir := t.TempDir()
	key, line := sshKey(t, dir, "release", "release@example.com")
	allowed := writeFile(t, filepath.Join(dir, "allowed_signers"), line)
	announce := startTracker(t)
	tree := writeTree(t, t.TempDir())
	art, err := bundle.Create(context.Background(), bundle.CreateOptions{
		Tag: "v1", FilesPath: tree, TempPath: t.TempDir(), Trackers: []string{announce},
		Format: bundle.Tar, PieceLength: 64 << 10, SignKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	if art.SignaturePath != art.TorrentPath+".sig" {
		t.Fatalf("signature at %q, want beside the torrent", art.SignaturePath)
	}
	startSeed(t, announce, art.TorrentPath, art.ArtifactPath)
	dest := t.TempDir()
	cfg := peerConfig(t, art.TorrentPath, dest)
	cfg.AllowedSigners = allowed
	if err := Peer(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "v1")); err != nil {
		t.Fatalf("files not in place: %v", err)
	}
}

// TestPeerRefusesSignature checks that each bad signature is refused with
// its own error, before the tracker hears of the peer and with the
// destination untouched.
func TestPeerRefusesSignature(t *testing.T) {
	dir := t.TempDir()
	key, line := sshKey(t, dir, "release", "release@example.com")
	other, _ := sshKey(t, dir, "other", "other@example.com")
	allowed := writeFile(t, filepath.Join(dir, "allowed_signers"), line)

	var announces atomic.Int32
	tr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		announces.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer tr.Close()
	tree := writeTree(t, t.TempDir())
	art, err := bundle.Create(context.Background(), bundle.CreateOptions{
		Tag: "v1", FilesPath: tree, TempPath: t.TempDir(), Trackers: []string{tr.URL + "/announce"},
		Format: bundle.Tar, PieceLength: 64 << 10, SignKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(art.TorrentPath)
	if err != nil {
		t.Fatal(err)
	}
	goodSig, err := os.ReadFile(art.SignaturePath)
	if err != nil {
		t.Fatal(err)
	}
	keygenSign := func(k, ns string) string {
		d := t.TempDir()
		f := writeFile(t, filepath.Join(d, "t.torrent"), string(good))
		if out, err := exec.Command("ssh-keygen", "-q", "-Y", "sign", "-n", ns, "-f", k, f).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
		}
		b, err := os.ReadFile(f + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tampered := strings.Replace(string(good), "7:private", "7:privatf", 1)
	if tampered == string(good) {
		// Any byte of the announce URL will do.
		tampered = strings.Replace(string(good), "announce", "announcf", 1)
	}
	for _, tc := range []struct {
		name    string
		torrent string
		sig     *string // nil: no signature file
		want    error
		says    string
	}{
		{"missing", string(good), nil, bundle.ErrNoSignature, "no signature"},
		{"malformed", string(good), ptr("-----BEGIN SSH SIGNATURE-----\nAAAA\n"), sshsig.ErrMalformed, "malformed"},
		{"key not allowed", string(good), ptr(keygenSign(other, "murder")), sshsig.ErrNotAllowed, "not listed"},
		{"wrong namespace", string(good), ptr(keygenSign(key, "git")), sshsig.ErrNamespace, `"git"`},
		{"tampered torrent", tampered, ptr(string(goodSig)), sshsig.ErrMismatch, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			torrent := writeFile(t, filepath.Join(d, "v1.tar.torrent"), tc.torrent)
			if tc.sig != nil {
				writeFile(t, torrent+".sig", *tc.sig)
			}
			dest := filepath.Join(d, "dest")
			cfg := peerConfig(t, torrent, dest)
			cfg.AllowedSigners = allowed
			err := Peer(context.Background(), cfg)
			if !errors.Is(err, bundle.ErrSignature) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.want, tc.says)
			}
			if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("destination touched: %v", err)
			}
			if _, err := os.Lstat(cfg.TempPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temp path touched: %v", err)
			}
		})
	}
	// The --signature flag points elsewhere.
	d := t.TempDir()
	cfg := peerConfig(t, art.TorrentPath, filepath.Join(d, "dest"))
	cfg.AllowedSigners = allowed
	cfg.Signature = writeFile(t, filepath.Join(d, "elsewhere.sig"), keygenSign(other, "murder"))
	if err := Peer(context.Background(), cfg); !errors.Is(err, sshsig.ErrNotAllowed) {
		t.Fatalf("with --signature: got %v, want ErrNotAllowed", err)
	}
	if n := announces.Load(); n != 0 {
		t.Errorf("the tracker got %d announces from refused peers", n)
	}
}

func ptr(s string) *string { return &s }

// TestPeerRefusesBadTag checks that a torrent whose name gives a tag with
// a newline or a command substitution is refused.
func TestPeerRefusesBadTag(t *testing.T) {
	for _, name := range []string{"v1\nx.tar", "$(reboot).tar", "\x1b[2J.tgz", "..x"} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "payload"), "some bytes")
		torrent, _ := makeTorrent(t, dir, "payload", "http://127.0.0.1:1/announce", 16<<10)
		b, err := os.ReadFile(torrent)
		if err != nil {
			t.Fatal(err)
		}
		// Rename inside the info dictionary: the length prefix changes with it.
		b = []byte(strings.Replace(string(b), "4:name7:payload", "4:name"+strconv.Itoa(len(name))+":"+name, 1))
		writeFile(t, torrent, string(b))
		dest := filepath.Join(dir, "dest")
		err = Peer(context.Background(), peerConfig(t, torrent, dest))
		if !errors.Is(err, bundle.ErrBadTag) {
			t.Errorf("name %q: got %v, want ErrBadTag", name, err)
		}
		if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("name %q: destination touched", name)
		}
	}
}

// TestPeerTempSymlink plants a symlink at the fixed name of the download
// in the temp path: the peer must refuse it and leave its target alone.
func TestPeerTempSymlink(t *testing.T) {
	announce := startTracker(t)
	_, art := makeArtifact(t, "v1", announce)
	dir := t.TempDir()
	victim := writeFile(t, filepath.Join(dir, "victim"), "precious")
	for _, name := range []string{"v1.tar", ".v1.tar.murder-lock"} {
		t.Run(name, func(t *testing.T) {
			cfg := peerConfig(t, art.TorrentPath, filepath.Join(t.TempDir(), "dest"))
			if err := os.MkdirAll(cfg.TempPath, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, filepath.Join(cfg.TempPath, name)); err != nil {
				t.Fatal(err)
			}
			err := Peer(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Fatalf("got %v, want a refusal of the symbolic link", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("the symlink's target was changed: %q", b)
			}
		})
	}
}
