package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/testenv"
)

// signKey makes an ed25519 key with ssh-keygen in dir and returns its
// path and an allowed_signers line for it.
func signKey(t *testing.T, dir, name string) (string, string) {
	key, pub := testenv.SigningKey(t, dir, name, "")
	return key, name + `@example.com namespaces="murder" ` + pub + "\n"
}

// TestFleetDeploySigned deploys with [trust] set: the seeder signs, every
// peer checks; then a peer whose allowed_signers lacks the key refuses the
// release, and only that host fails, with the reason.
func TestFleetDeploySigned(t *testing.T) {
	fb := newFleetBed(t, 3)
	key, line := signKey(t, fb.work, "release")
	_, otherLine := signKey(t, fb.work, "other")
	allowed := filepath.Join(fb.work, "allowed_signers")
	if err := os.WriteFile(allowed, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := fb.inventory(t, "signed.toml", "1s", fb.good...)
	b, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	trust := "\n[trust]\nsign_key = \"" + key + "\"\nallowed_signers = \"" + allowed + "\"\n"
	if err := os.WriteFile(inv, append(b, trust...), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := fb.murder(t, "deploy", "-c", inv, "--tag", "v1", "--files-path", fb.src, "--destination-path", bedDest)
	t.Logf("murder deploy:\n%s", out)
	if err != nil {
		t.Fatalf("signed deploy: %v", err)
	}
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v1"), testenv.Mode)
		if got, err := os.ReadFile(h.Path(bedRemote + "/allowed_signers")); err != nil || string(got) != line {
			t.Errorf("%s: allowed_signers not distributed: %v", h.Addr(), err)
		}
		// The temp path is murder's own, private directory.
		if fi, err := os.Stat(h.Path("/tmp/murder")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: temp path /tmp/murder: %v, mode %v, want 0700", h.Addr(), err, fi.Mode())
		}
	}

	// One host's allowed signers no longer list the key.
	bad := fb.good[2]
	if err := os.WriteFile(bad.Path(bedRemote+"/allowed_signers"), []byte(otherLine), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"start-tracker"},
		{"create-torrent", "--tag", "v2", "--files-path", fb.src},
		{"start-seeding", "--tag", "v2"},
	} {
		if out, err := fb.murder(t, append([]string{"fleet", "-c", inv}, args...)...); err != nil {
			t.Fatalf("murder fleet %v: %v\n%s", args, err, out)
		}
	}
	out, err = fb.murder(t, "fleet", "-c", inv, "peer", "--tag", "v2", "--destination-path", bedDest)
	t.Logf("murder fleet peer:\n%s", out)
	if exitCode(err) != 1 || !strings.Contains(out, "FAILED HOSTS (1 of 3)") {
		t.Fatalf("peer with one host refusing the key: exit %v, want 1 with 1 failed host", err)
	}
	table := out[strings.Index(out, "FAILED HOSTS"):]
	for _, want := range []string{bad.Addr().String(), "signature check failed", "is not listed"} {
		if !strings.Contains(table, want) {
			t.Errorf("failure table lacks %q:\n%s", want, table)
		}
	}
	if _, err := os.Stat(bad.Path(bedDest + "/v2")); err == nil {
		t.Errorf("%s refused the release but has its files", bad.Addr())
	}
	for _, h := range fb.good[:2] {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v2"), testenv.Mode)
	}
	for _, args := range [][]string{{"stop-all-peering"}, {"stop-seeding", "--tag", "v2"}, {"stop-tracker"}} {
		if out, err := fb.murder(t, append([]string{"fleet", "-c", inv}, args...)...); err != nil {
			t.Errorf("murder fleet %v: %v\n%s", args, err, out)
		}
	}
}
