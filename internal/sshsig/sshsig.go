// Package sshsig signs and verifies SSHSIG signatures, the format that
// `ssh-keygen -Y sign` writes and `ssh-keygen -Y verify` checks (OpenSSH's
// PROTOCOL.sshsig), with ordinary OpenSSH keys; and it reads OpenSSH
// allowed_signers files, which say which keys may sign for whom.
//
// A signature binds a message to a namespace (murder signs its torrents in
// the namespace "murder"), so that a signature made for one purpose cannot
// be replayed for another.
package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrMalformed: the signature is not a well-formed SSHSIG signature.
	ErrMalformed = errors.New("sshsig: malformed signature")
	// ErrNamespace: the signature was made for another namespace.
	ErrNamespace = errors.New("sshsig: wrong namespace")
	// ErrMismatch: the signature does not match the message (the message
	// was changed after it was signed, or the signature was).
	ErrMismatch = errors.New("sshsig: signature does not match the data")
	// ErrNotAllowed: no line of the allowed signers lets the key sign.
	ErrNotAllowed = errors.New("sshsig: key is not an allowed signer")
	// ErrEncryptedKey: the private key is protected by a passphrase.
	ErrEncryptedKey = errors.New("sshsig: private key is encrypted")
	// ErrCertificate: the signature was made with a certificate, which
	// this package does not check.
	ErrCertificate = errors.New("sshsig: certificate signatures are not supported")
)

const (
	magic   = "SSHSIG"
	version = 1

	armorBegin = "-----BEGIN SSH SIGNATURE-----"
	armorEnd   = "-----END SSH SIGNATURE-----"

	// maxArmored bounds what Parse reads: a signature with an 16384-bit
	// RSA key is about 6 KiB armored.
	maxArmored = 64 << 10
)

// Hash algorithms of the SSHSIG format. ssh-keygen signs with sha512.
const (
	SHA512 = "sha512"
	SHA256 = "sha256"
)

// Signature is one SSHSIG signature.
type Signature struct {
	// PublicKey is the key that made the signature.
	PublicKey ssh.PublicKey
	// Namespace is what the signature is for, e.g. "murder" or "git".
	Namespace string
	// HashAlgorithm is SHA512 or SHA256: the message is hashed with it
	// and the hash is signed.
	HashAlgorithm string
	// Signature is the signature over the signed-data blob.
	Signature *ssh.Signature
}

// ParsePrivateKey parses an OpenSSH (or PEM) private key into a signer.
// A key protected by a passphrase gives an error wrapping ErrEncryptedKey:
// murder signs unattended, so it cannot ask for one.
func ParsePrivateKey(pemBytes []byte) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(pemBytes)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%w (murder cannot ask for its passphrase: use a key without one, or sign with ssh-keygen -Y sign -n murder)", ErrEncryptedKey)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: private key: %w", err)
	}
	return s, nil
}

// Sign signs the message read from r in namespace with signer, hashing it
// with SHA-512, as `ssh-keygen -Y sign -n NAMESPACE` does. RSA keys sign
// with rsa-sha2-512.
func Sign(signer ssh.Signer, r io.Reader, namespace string) (*Signature, error) {
	if namespace == "" {
		return nil, errors.New("sshsig: empty namespace")
	}
	if _, ok := signer.PublicKey().(*ssh.Certificate); ok {
		return nil, ErrCertificate
	}
	digest, err := hashMessage(SHA512, r)
	if err != nil {
		return nil, err
	}
	data := signedData(namespace, SHA512, digest)
	var sig *ssh.Signature
	if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("sshsig: this RSA signer cannot sign with rsa-sha2-512")
		}
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: sign: %w", err)
	}
	return &Signature{PublicKey: signer.PublicKey(), Namespace: namespace, HashAlgorithm: SHA512, Signature: sig}, nil
}

// Verify checks that s is a signature of the message read from r in
// namespace. It says nothing of whether the key may sign: see
// AllowedSigners.Find.
func (s *Signature) Verify(r io.Reader, namespace string) error {
	if s.Namespace != namespace {
		return fmt.Errorf("%w: the signature is for namespace %q, want %q", ErrNamespace, s.Namespace, namespace)
	}
	if _, ok := s.PublicKey.(*ssh.Certificate); ok {
		return ErrCertificate
	}
	// SHA-1 RSA signatures are refused, as ssh-keygen refuses them.
	if s.PublicKey.Type() == ssh.KeyAlgoRSA && s.Signature.Format != ssh.KeyAlgoRSASHA512 && s.Signature.Format != ssh.KeyAlgoRSASHA256 {
		return fmt.Errorf("%w: RSA signature of type %q (want rsa-sha2-512 or rsa-sha2-256)", ErrMalformed, s.Signature.Format)
	}
	digest, err := hashMessage(s.HashAlgorithm, r)
	if err != nil {
		return err
	}
	if err := s.PublicKey.Verify(signedData(s.Namespace, s.HashAlgorithm, digest), s.Signature); err != nil {
		return fmt.Errorf("%w (%s key %s)", ErrMismatch, s.PublicKey.Type(), ssh.FingerprintSHA256(s.PublicKey))
	}
	return nil
}

// Fingerprint returns the signing key's SHA256 fingerprint, as ssh-keygen
// -l prints it ("SHA256:...").
func (s *Signature) Fingerprint() string { return ssh.FingerprintSHA256(s.PublicKey) }

func hashMessage(alg string, r io.Reader) ([]byte, error) {
	var h hash.Hash
	switch alg {
	case SHA512:
		h = sha512.New()
	case SHA256:
		h = sha256.New()
	default:
		return nil, fmt.Errorf("%w: unknown hash algorithm %q", ErrMalformed, alg)
	}
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("sshsig: read message: %w", err)
	}
	return h.Sum(nil), nil
}

// signedData is the blob that is signed (PROTOCOL.sshsig): the magic, the
// namespace, an empty reserved string, the hash algorithm and the hash.
func signedData(namespace, alg string, digest []byte) []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	putString(&b, []byte(namespace))
	putString(&b, nil)
	putString(&b, []byte(alg))
	putString(&b, digest)
	return b.Bytes()
}

func putString(b *bytes.Buffer, s []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	b.Write(n[:])
	b.Write(s)
}

// Marshal returns the binary form of s (what the armor holds).
func (s *Signature) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], version)
	b.Write(v[:])
	putString(&b, s.PublicKey.Marshal())
	putString(&b, []byte(s.Namespace))
	putString(&b, nil)
	putString(&b, []byte(s.HashAlgorithm))
	putString(&b, ssh.Marshal(s.Signature))
	return b.Bytes()
}

// Armor returns s as ssh-keygen writes it to FILE.sig: base64 in lines of
// 70 characters between BEGIN and END lines.
func (s *Signature) Armor() []byte {
	enc := base64.StdEncoding.EncodeToString(s.Marshal())
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n" + armorEnd + "\n")
	return b.Bytes()
}

// Parse parses an armored signature, as written by ssh-keygen -Y sign or
// Armor. Errors wrap ErrMalformed.
func Parse(armored []byte) (*Signature, error) {
	if len(armored) > maxArmored {
		return nil, fmt.Errorf("%w: %d bytes, more than a signature can be", ErrMalformed, len(armored))
	}
	text := strings.TrimSpace(strings.ReplaceAll(string(armored), "\r\n", "\n"))
	body, ok := strings.CutPrefix(text, armorBegin)
	if !ok {
		return nil, fmt.Errorf("%w: no %q line at the start", ErrMalformed, armorBegin)
	}
	body, ok = strings.CutSuffix(body, armorEnd)
	if !ok {
		return nil, fmt.Errorf("%w: no %q line at the end", ErrMalformed, armorEnd)
	}
	var enc strings.Builder
	for _, l := range strings.Split(body, "\n") {
		enc.WriteString(strings.TrimSpace(l))
	}
	raw, err := base64.StdEncoding.DecodeString(enc.String())
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64: %w", ErrMalformed, err)
	}
	return ParseBlob(raw)
}

// ParseBlob parses the binary form of a signature (see Marshal). Errors
// wrap ErrMalformed.
func ParseBlob(b []byte) (*Signature, error) {
	rest, ok := bytes.CutPrefix(b, []byte(magic))
	if !ok {
		return nil, fmt.Errorf("%w: no SSHSIG magic", ErrMalformed)
	}
	if len(rest) < 4 {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if v := binary.BigEndian.Uint32(rest); v != version {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrMalformed, v, version)
	}
	rest = rest[4:]
	var fields [5][]byte
	for i := range fields {
		var err error
		if fields[i], rest, err = readString(rest); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(rest))
	}
	pub, err := ssh.ParsePublicKey(fields[0])
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrMalformed, err)
	}
	alg := string(fields[3])
	if alg != SHA512 && alg != SHA256 {
		return nil, fmt.Errorf("%w: unknown hash algorithm %q", ErrMalformed, alg)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(fields[4], sig); err != nil {
		return nil, fmt.Errorf("%w: signature blob: %w", ErrMalformed, err)
	}
	return &Signature{PublicKey: pub, Namespace: string(fields[1]), HashAlgorithm: alg, Signature: sig}, nil
}

func readString(b []byte) (s, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("truncated")
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, errors.New("truncated")
	}
	return b[4 : 4+n], b[4+n:], nil
}
