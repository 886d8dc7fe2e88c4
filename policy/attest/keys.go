package attest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PublicKeyPrefix starts the text form of a public key: "ed25519:" and the
// key in standard base64 (what configs and `unseen keygen --sign` print).
const PublicKeyPrefix = "ed25519:"

// FormatPublicKey is the text form of pub.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the text form of a public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("attest: a public key is %q followed by base64", PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("attest: public key is not 32 bytes of base64")
	}
	return ed25519.PublicKey(b), nil
}

// Fingerprint is a short, stable name of a public key for people to compare:
// the first 16 hex characters of its SHA-256.
func Fingerprint(pub []byte) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// GenerateKey makes a fresh Ed25519 key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

const pemType = "PRIVATE KEY"

// MarshalPrivateKey encodes priv as PEM (PKCS #8), the form key files hold.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM (PKCS #8) Ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType {
		return nil, errors.New("attest: not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("attest: the private key is not Ed25519")
	}
	return priv, nil
}

// ReadPrivateKeyFile reads a key file made by WritePrivateKeyFile.
func ReadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// WritePrivateKeyFile writes priv to a new file (mode 0600); it never
// overwrites an existing key.
func WritePrivateKeyFile(path string, priv ed25519.PrivateKey) error {
	b, err := MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("attest: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("attest: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("attest: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("attest: %w", err)
	}
	return f.Close()
}

// LoadOrCreatePrivateKeyFile reads the key at path, creating one if no file
// is there (a node's or the coordinator's signing key on first start).
func LoadOrCreatePrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	priv, err := ReadPrivateKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, err
	}
	_, priv, err = GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := WritePrivateKeyFile(path, priv); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process made it first
			return ReadPrivateKeyFile(path)
		}
		return nil, err
	}
	return priv, nil
}
