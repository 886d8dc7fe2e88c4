// Package delivery seals a psi_members result to the submitting analyst.
//
// The requesting department's node maps the matching positions back to its
// own IDs and seals the list with HPKE (RFC 9180, base mode,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to the
// analyst's public key. The info string binds the job id, so a sealed list
// cannot be passed off as another job's. Who learns what: the node learns
// nothing new (the IDs are its own); the coordinator stores and serves only
// the ciphertext; the analyst, holding the private key, learns the list.
package delivery

import (
	"bytes"
	"errors"
	"strings"

	"github.com/unseen-data/unseen/internal/hpke"
)

const info = "unseen/psi-members/v1"

var (
	ErrKey        = errors.New("delivery: invalid key")
	ErrCiphertext = errors.New("delivery: ciphertext does not open (wrong key, wrong job or tampered)")
	ErrTooLarge   = errors.New("delivery: member list too large")
)

// MaxMembers bounds a sealed list.
const MaxMembers = 1 << 22

// GenerateKey returns a fresh analyst key pair, both as raw bytes.
func GenerateKey() (pub, priv []byte, err error) { return hpke.GenerateKey() }

func infoFor(jobID string) []byte { return []byte(info + "\x00" + jobID) }

// Seal encrypts ids (newline-joined) to pub for job jobID.
func Seal(pub []byte, jobID string, ids []string) ([]byte, error) {
	if len(ids) > MaxMembers {
		return nil, ErrTooLarge
	}
	if hpke.CheckPublicKey(pub) != nil {
		return nil, ErrKey
	}
	for _, id := range ids {
		if strings.ContainsRune(id, '\n') {
			return nil, errors.New("delivery: id contains a newline")
		}
	}
	return hpke.Seal(pub, infoFor(jobID), nil, []byte(strings.Join(ids, "\n")))
}

// Open decrypts a sealed list with the analyst's private key.
func Open(priv []byte, jobID string, sealed []byte) ([]string, error) {
	pt, err := hpke.Open(priv, infoFor(jobID), nil, sealed)
	if errors.Is(err, hpke.ErrKey) {
		return nil, ErrKey
	}
	if err != nil {
		return nil, ErrCiphertext
	}
	if len(pt) == 0 {
		return []string{}, nil
	}
	return strings.Split(string(bytes.TrimRight(pt, "\n")), "\n"), nil
}
