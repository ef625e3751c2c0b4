package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/sshsig"
)

// SignatureNamespace is the SSHSIG namespace of murder's signatures:
// `ssh-keygen -Y sign -n murder` makes the same signature as
// CreateOptions.SignKey, and `ssh-keygen -Y verify -n murder` checks it.
const SignatureNamespace = "murder"

// SignaturePath returns where the signature of a .torrent is kept by
// default: beside it, with ".sig" added (TAG.tgz.torrent.sig).
func SignaturePath(torrent string) string { return torrent + ".sig" }

// ErrSignature is wrapped by every reason CheckSignature refuses a
// torrent; the sshsig error that says which is wrapped too.
var ErrSignature = errors.New("bundle: signature check failed")

// ErrNoSignature is wrapped (with ErrSignature) when there is no
// signature file to check.
var ErrNoSignature = errors.New("bundle: no signature")

// Signer says who signed a torrent.
type Signer struct {
	// Principals are the identities of the allowed_signers line that let
	// the key sign; "" when the signature was checked without one.
	Principals string
	// KeyType and Fingerprint describe the key ("ssh-ed25519",
	// "SHA256:...").
	KeyType, Fingerprint string
}

// String names the signer: its principals when known, else its key.
func (s *Signer) String() string {
	if s.Principals != "" {
		return fmt.Sprintf("%s (%s %s)", s.Principals, s.KeyType, s.Fingerprint)
	}
	return fmt.Sprintf("%s %s (not checked against allowed signers)", s.KeyType, s.Fingerprint)
}

// LoadSignKey reads the OpenSSH private key at path for signing. A key
// protected by a passphrase is refused (sshsig.ErrEncryptedKey).
func LoadSignKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: sign key: %w", err)
	}
	s, err := sshsig.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: sign key %s: %w", path, err)
	}
	return s, nil
}

// SignTorrent writes the signature of data (a .torrent's exact bytes) to
// sigPath, through a temporary file and a rename (a hard link without
// force, so that an existing file is not overwritten).
func SignTorrent(signer ssh.Signer, data []byte, sigPath string, force bool) error {
	sig, err := sshsig.Sign(signer, bytes.NewReader(data), SignatureNamespace)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return writeNew(sigPath, sig.Armor(), force)
}

// writeNew writes b to path through a temporary file in the same
// directory; the file appears whole or not at all.
func writeNew(path string, b []byte, force bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bundle: write %s: %w", path, err)
	}
	if force {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s (use --force to overwrite)", ErrExists, path)
	}
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// CheckSignature checks the signature at sigPath over data, a .torrent's
// exact bytes, in namespace "murder". With allowedSigners (the path of an
// OpenSSH allowed_signers file) the key must be allowed to sign for
// "murder" there, and the Signer names its principals; without, only the
// signature itself is checked. Every refusal wraps ErrSignature and the
// sshsig error that says which check failed: ErrNoSignature,
// sshsig.ErrMalformed, sshsig.ErrNamespace, sshsig.ErrNotAllowed,
// sshsig.ErrMismatch.
func CheckSignature(data []byte, sigPath, allowedSigners string) (*Signer, error) {
	var allowed *sshsig.AllowedSigners
	if allowedSigners != "" {
		var err error
		if allowed, err = sshsig.LoadAllowedSigners(allowedSigners); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSignature, err)
		}
	}
	armored, err := os.ReadFile(sigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w at %s (sign with murder create --sign-key or ssh-keygen -Y sign -n murder, or give its path with --signature)", ErrSignature, ErrNoSignature, sigPath)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	sig, err := sshsig.Parse(armored)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSignature, sigPath, err)
	}
	if sig.Namespace != SignatureNamespace {
		// Said before the key is looked up: it is the first thing wrong.
		return nil, fmt.Errorf("%w: %s: %w", ErrSignature, sigPath, sig.Verify(bytes.NewReader(data), SignatureNamespace))
	}
	s := &Signer{KeyType: sig.PublicKey.Type(), Fingerprint: sig.Fingerprint()}
	if allowed != nil {
		e, err := allowed.Find(sig.PublicKey, SignatureNamespace, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w in %s", ErrSignature, sigPath, err, allowedSigners)
		}
		s.Principals = e.Principals
	}
	if err := sig.Verify(bytes.NewReader(data), SignatureNamespace); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSignature, sigPath, err)
	}
	return s, nil
}
