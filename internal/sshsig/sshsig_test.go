package sshsig

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/testenv"
)

// keyTypes are the key kinds tested against ssh-keygen: -t and -b.
var keyTypes = []struct{ name, t, bits string }{
	{"ed25519", "ed25519", ""},
	{"rsa", "rsa", "3072"},
	{"ecdsa-p256", "ecdsa", "256"},
	{"ecdsa-p384", "ecdsa", "384"},
	{"ecdsa-p521", "ecdsa", "521"},
}

func sshKeygen(t *testing.T) string {
	t.Helper()
	testenv.Require(t, "ssh-keygen") // Debian package openssh-client
	return "ssh-keygen"
}

// newKey makes a key with ssh-keygen in dir and returns its path.
func newKey(t *testing.T, dir, typ, bits, passphrase string) string {
	t.Helper()
	path := filepath.Join(dir, "key-"+typ+bits)
	args := []string{"-q", "-t", typ, "-N", passphrase, "-C", "test@example.com", "-f", path}
	if bits != "" {
		args = append(args, "-b", bits)
	}
	if out, err := exec.Command(sshKeygen(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v: %s", args, err, out)
	}
	return path
}

// allowedLine is an allowed_signers line for the public key at pub+".pub".
func allowedLine(t *testing.T, key, principal, options string) string {
	t.Helper()
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	line := principal + " "
	if options != "" {
		line += options + " "
	}
	return line + f[0] + " " + f[1] + "\n"
}

func loadSigner(t *testing.T, key string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verifyWithSSHKeygen runs ssh-keygen -Y verify and returns its output and
// whether it accepted the signature.
func verifyWithSSHKeygen(t *testing.T, allowed, identity, namespace, sig string, message []byte) (string, bool) {
	t.Helper()
	cmd := exec.Command(sshKeygen(t), "-Y", "verify", "-f", allowed, "-I", identity, "-n", namespace, "-s", sig)
	cmd.Stdin = bytes.NewReader(message)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func TestMurderSignsSSHKeygenVerifies(t *testing.T) {
	message := []byte("d8:announce...e the exact bytes of a .torrent\x00\xff")
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			key := newKey(t, dir, kt.t, kt.bits, "")
			sig, err := Sign(loadSigner(t, key), bytes.NewReader(message), "murder")
			if err != nil {
				t.Fatal(err)
			}
			sigPath := filepath.Join(dir, "file.sig")
			if err := os.WriteFile(sigPath, sig.Armor(), 0o644); err != nil {
				t.Fatal(err)
			}
			allowed := filepath.Join(dir, "allowed_signers")
			if err := os.WriteFile(allowed, []byte(allowedLine(t, key, "release@example.com", `namespaces="murder"`)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, ok := verifyWithSSHKeygen(t, allowed, "release@example.com", "murder", sigPath, message)
			if !ok || !strings.Contains(out, `Good "murder" signature for release@example.com`) {
				t.Fatalf("ssh-keygen -Y verify refused murder's signature: %s", out)
			}
			// The same check fails for other bytes and another namespace,
			// so the acceptance above means something.
			if out, ok := verifyWithSSHKeygen(t, allowed, "release@example.com", "murder", sigPath, append(message, 'x')); ok {
				t.Fatalf("ssh-keygen accepted a tampered message: %s", out)
			}
			if out, ok := verifyWithSSHKeygen(t, allowed, "release@example.com", "git", sigPath, message); ok {
				t.Fatalf("ssh-keygen accepted the wrong namespace: %s", out)
			}
			if kt.t == "rsa" && sig.Signature.Format != ssh.KeyAlgoRSASHA512 {
				t.Errorf("RSA signature format %q, want %q", sig.Signature.Format, ssh.KeyAlgoRSASHA512)
			}
		})
	}
}

func TestSSHKeygenSignsMurderVerifies(t *testing.T) {
	message := []byte("the bytes of a .torrent\n")
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			key := newKey(t, dir, kt.t, kt.bits, "")
			file := filepath.Join(dir, "v42.tgz.torrent")
			if err := os.WriteFile(file, message, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sshKeygen(t), "-q", "-Y", "sign", "-n", "murder", "-f", key, file).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
			}
			armored, err := os.ReadFile(file + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Parse(armored)
			if err != nil {
				t.Fatal(err)
			}
			if err := sig.Verify(bytes.NewReader(message), "murder"); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !bytes.Equal(sig.Armor(), armored) {
				t.Errorf("Armor() differs from what ssh-keygen wrote:\n%s\nwant\n%s", sig.Armor(), armored)
			}
			allowed, err := ParseAllowedSigners([]byte(allowedLine(t, key, "release@example.com", "")))
			if err != nil {
				t.Fatal(err)
			}
			e, err := allowed.Find(sig.PublicKey, "murder", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if e.Principals != "release@example.com" {
				t.Errorf("principals %q, want release@example.com", e.Principals)
			}
		})
	}
}

// TestRefusals checks that each way a signature can be wrong is refused
// with its own error.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t, dir, "ed25519", "", "")
	other := newKey(t, dir, "ecdsa", "256", "")
	message := []byte("the torrent as signed")
	file := filepath.Join(dir, "t")
	if err := os.WriteFile(file, message, 0o644); err != nil {
		t.Fatal(err)
	}
	sign := func(ns, k string) []byte {
		if out, err := exec.Command(sshKeygen(t), "-q", "-Y", "sign", "-n", ns, "-f", k, file).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
		}
		b, err := os.ReadFile(file + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(file + ".sig")
		return b
	}
	good := sign("murder", key)
	allowed, err := ParseAllowedSigners([]byte(allowedLine(t, key, "release@example.com", "")))
	if err != nil {
		t.Fatal(err)
	}
	check := func(armored, msg []byte) error {
		sig, err := Parse(armored)
		if err != nil {
			return err
		}
		if _, err := allowed.Find(sig.PublicKey, "murder", time.Now()); err != nil {
			return err
		}
		return sig.Verify(bytes.NewReader(msg), "murder")
	}
	if err := check(good, message); err != nil {
		t.Fatalf("the good signature: %v", err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x01
	for _, tc := range []struct {
		name    string
		armored []byte
		msg     []byte
		want    error
		text    string
	}{
		{"tampered torrent", good, append(bytes.Clone(message), ' '), ErrMismatch, "does not match"},
		{"key not in the file", sign("murder", other), message, ErrNotAllowed, "is not listed"},
		{"wrong namespace", sign("git", key), message, ErrNamespace, `namespace "git", want "murder"`},
		{"malformed: not armored", []byte("hello"), message, ErrMalformed, "BEGIN SSH SIGNATURE"},
		{"malformed: empty", nil, message, ErrMalformed, "BEGIN SSH SIGNATURE"},
		{"malformed: truncated", good[:len(good)/2], message, ErrMalformed, "END SSH SIGNATURE"},
		{"malformed: bad base64", bytes.Replace(good, []byte("\n"), []byte("\n!"), 2), message, ErrMalformed, "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(tc.armored, tc.msg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrMismatch, ErrNotAllowed, ErrNamespace, ErrMalformed} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
		})
	}
	// A flipped bit anywhere is refused, one way or another.
	if err := check(flipped, message); err == nil {
		t.Error("a signature with a flipped bit was accepted")
	}
}

func TestEncryptedKey(t *testing.T) {
	key := newKey(t, t.TempDir(), "ed25519", "", "a passphrase")
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrivateKey(b); !errors.Is(err, ErrEncryptedKey) {
		t.Fatalf("got %v, want ErrEncryptedKey", err)
	}
}

// TestFixtures checks the signatures in testdata, made by make.sh.
func TestFixtures(t *testing.T) {
	message, err := os.ReadFile("testdata/message")
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := LoadAllowedSigners("testdata/allowed_signers")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		file, principals string
		want             error
	}{
		{"message.ed25519.sig", "release@example.com", nil},
		{"message.rsa.sig", "rsa@example.com", nil},
		{"message.ecdsa.sig", "ecdsa@example.com,ops@example.com", nil},
		{"message.git-namespace.sig", "", ErrNamespace},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			err = sig.Verify(bytes.NewReader(message), "murder")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: got %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			e, err := allowed.Find(sig.PublicKey, "murder", at)
			if err != nil {
				t.Fatal(err)
			}
			if e.Principals != tc.principals {
				t.Errorf("principals %q, want %q", e.Principals, tc.principals)
			}
		})
	}
}
