package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/bencode"
	"github.com/murder-deploy/murder/internal/testenv"
)

// keygen makes an ed25519 key (with passphrase when not "") and returns
// its path and an allowed_signers line for principal.
func keygen(t *testing.T, dir, principal, passphrase string) (string, string) {
	key, pub := testenv.SigningKey(t, dir, "key-"+principal, passphrase)
	return key, principal + " " + pub + "\n"
}

// TestCreateSignShow signs with create --sign-key, checks the signature
// with ssh-keygen -Y verify, and has show name the signer.
func TestCreateSignShow(t *testing.T) {
	dir := t.TempDir()
	key, line := keygen(t, dir, "release@example.com", "")
	allowed := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(allowed, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app"), []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	temp := t.TempDir()
	out, err := execute(t, "create", "--tag", "v1", "--files-path", src, "--tracker", "127.0.0.1:8998", "--temp-path", temp, "--sign-key", key)
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	torrent := filepath.Join(temp, "v1.tgz.torrent")
	if !strings.Contains(out, "signature: "+torrent+".sig\n") {
		t.Errorf("create does not say where the signature is:\n%s", out)
	}
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "release@example.com", "-n", "murder", "-s", torrent+".sig")
	f, err := os.Open(torrent)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify refused create's signature: %v: %s", err, b)
	}

	show, err := execute(t, "show", "--allowed-signers", allowed, torrent)
	if err != nil || !strings.Contains(show, "signed by: release@example.com (ssh-ed25519 SHA256:") {
		t.Fatalf("show with allowed signers: %v\n%s", err, show)
	}
	show, err = execute(t, "show", torrent)
	if err != nil || !strings.Contains(show, "signed by: ssh-ed25519 SHA256:") || !strings.Contains(show, "not checked") {
		t.Fatalf("show: %v\n%s", err, show)
	}
	js, err := execute(t, "show", "--json", "--allowed-signers", allowed, torrent)
	var o struct{ Signature *showSig }
	if err != nil || json.Unmarshal([]byte(js), &o) != nil || o.Signature == nil || o.Signature.Principals != "release@example.com" {
		t.Fatalf("show --json: %v\n%s", err, js)
	}

	// Another key's allowed signers: show says so and fails.
	_, otherLine := keygen(t, dir, "other@example.com", "")
	if err := os.WriteFile(allowed, []byte(otherLine), 0o644); err != nil {
		t.Fatal(err)
	}
	show, err = execute(t, "show", "--allowed-signers", allowed, torrent)
	if err == nil || !strings.Contains(show, "signature: BAD: ") || !strings.Contains(show, "not listed") {
		t.Fatalf("show with the wrong allowed signers: %v\n%s", err, show)
	}

	// Created again without a key, the old signature goes with the old torrent.
	if out, err := execute(t, "create", "--tag", "v1", "--files-path", src, "--tracker", "127.0.0.1:8998", "--temp-path", temp, "--force"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if _, err := os.Stat(torrent + ".sig"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale signature was left beside the new torrent: %v", err)
	}
}

func TestCreateEncryptedKey(t *testing.T) {
	key, _ := keygen(t, t.TempDir(), "locked", "a passphrase")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app"), []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	temp := t.TempDir()
	out, err := execute(t, "create", "--tag", "v1", "--files-path", src, "--tracker", "127.0.0.1:8998", "--temp-path", temp, "--sign-key", key)
	if err == nil || !strings.Contains(err.Error(), "encrypted") || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("got %v, want an error about the passphrase\n%s", err, out)
	}
	if names, _ := os.ReadDir(temp); len(names) != 0 {
		t.Errorf("create left %d files behind", len(names))
	}
}

// TestTagRuleCreate checks that create refuses tags with a newline or a
// command substitution.
func TestTagRuleCreate(t *testing.T) {
	src := t.TempDir()
	for _, tag := range []string{"v1\nrm", "$(reboot)", "`id`", ".hidden", "a b"} {
		temp := t.TempDir()
		_, err := execute(t, "create", "--tag", tag, "--files-path", src, "--tracker", "127.0.0.1:8998", "--temp-path", temp)
		if err == nil || !strings.Contains(err.Error(), "bad tag") {
			t.Errorf("tag %q: got %v, want bad tag", tag, err)
		}
		if names, _ := os.ReadDir(temp); len(names) != 0 {
			t.Errorf("tag %q: create wrote %d files", tag, len(names))
		}
	}
}

// TestShowEscapes checks that names with control characters are printed
// quoted, never raw.
func TestShowEscapes(t *testing.T) {
	name := "v1\x1b]0;owned\x07\n.tgz"
	b, err := bencode.Marshal(map[string]any{
		"announce": "http://127.0.0.1:8998/announce",
		"comment":  "hi\rthere",
		"info": map[string]any{
			"name": name, "length": int64(1), "piece length": int64(16384), "pieces": strings.Repeat("x", 20),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "evil.torrent")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, "show", p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\x07\r") {
		t.Fatalf("show printed control characters: %q", out)
	}
	for _, want := range []string{`name: "v1\x1b]0;owned\a\n.tgz"`, `comment: "hi\rthere"`} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("show output lacks %s:\n%s", want, out)
		}
	}
}

func TestPeerSignatureNeedsAllowedSigners(t *testing.T) {
	_, err := execute(t, "peer", "--torrent", "x.torrent", "--destination-path", t.TempDir(), "--signature", "x.sig")
	if err == nil || !strings.Contains(err.Error(), "--signature needs --allowed-signers") {
		t.Fatalf("got %v", err)
	}
}
