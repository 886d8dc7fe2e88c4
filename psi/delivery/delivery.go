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
	"crypto/rand"
	"errors"
	"strings"

	"github.com/cloudflare/circl/hpke"
)

var (
	suite  = hpke.NewSuite(hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)
	scheme = hpke.KEM_X25519_HKDF_SHA256.Scheme()
)

const info = "unseen/psi-members/v1"

var (
	ErrKey        = errors.New("delivery: invalid key")
	ErrCiphertext = errors.New("delivery: ciphertext does not open (wrong key, wrong job or tampered)")
	ErrTooLarge   = errors.New("delivery: member list too large")
)

// MaxMembers bounds a sealed list.
const MaxMembers = 1 << 22

// encSize is the length of the KEM's encapsulated key (an X25519 point).
const encSize = 32

// GenerateKey returns a fresh analyst key pair, both as raw bytes.
func GenerateKey() (pub, priv []byte, err error) {
	pk, sk, err := scheme.GenerateKeyPair()
	if err != nil {
		return nil, nil, err
	}
	if pub, err = pk.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	if priv, err = sk.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	return pub, priv, nil
}

func infoFor(jobID string) []byte { return []byte(info + "\x00" + jobID) }

// Seal encrypts ids (newline-joined) to pub for job jobID.
func Seal(pub []byte, jobID string, ids []string) ([]byte, error) {
	if len(ids) > MaxMembers {
		return nil, ErrTooLarge
	}
	pk, err := scheme.UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, ErrKey
	}
	sender, err := suite.NewSender(pk, infoFor(jobID))
	if err != nil {
		return nil, ErrKey
	}
	enc, sealer, err := sender.Setup(rand.Reader)
	if err != nil {
		return nil, ErrKey
	}
	for _, id := range ids {
		if strings.ContainsRune(id, '\n') {
			return nil, errors.New("delivery: id contains a newline")
		}
	}
	ct, err := sealer.Seal([]byte(strings.Join(ids, "\n")), nil)
	if err != nil {
		return nil, err
	}
	return append(enc, ct...), nil
}

// Open decrypts a sealed list with the analyst's private key.
func Open(priv []byte, jobID string, sealed []byte) ([]string, error) {
	sk, err := scheme.UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, ErrKey
	}
	if len(sealed) < encSize+16 {
		return nil, ErrCiphertext
	}
	recv, err := suite.NewReceiver(sk, infoFor(jobID))
	if err != nil {
		return nil, ErrKey
	}
	opener, err := recv.Setup(sealed[:encSize])
	if err != nil {
		return nil, ErrCiphertext
	}
	pt, err := opener.Open(sealed[encSize:], nil)
	if err != nil {
		return nil, ErrCiphertext
	}
	if len(pt) == 0 {
		return []string{}, nil
	}
	return strings.Split(string(bytes.TrimRight(pt, "\n")), "\n"), nil
}
