// Package hpke is Unseen's one HPKE suite (RFC 9180, base mode):
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, from circl.
// It seals a message to a recipient's public key; the sealed form is the
// 32-byte encapsulated key followed by the AEAD ciphertext. psi_members
// lists sealed to an analyst and Shamir shares sealed node to node both use
// it, each with its own info string (domain separation).
package hpke

import (
	"crypto/rand"
	"errors"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
)

var (
	suite  = hpke.NewSuite(hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)
	scheme = hpke.KEM_X25519_HKDF_SHA256.Scheme()
)

// Sizes of the suite's objects.
const (
	EncSize        = 32 // encapsulated key, first in every sealed message
	Overhead       = 16 // the AEAD tag
	PublicKeySize  = 32
	PrivateKeySize = 32
)

var (
	// ErrKey: a key does not decode as an X25519 KEM key.
	ErrKey = errors.New("hpke: invalid key")
	// ErrOpen: a sealed message does not open (wrong key, info or
	// associated data, or tampering).
	ErrOpen = errors.New("hpke: message does not open")
)

// GenerateKey returns a fresh key pair, both halves encoded.
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

// PublicOf returns the public key of an encoded private key.
func PublicOf(priv []byte) ([]byte, error) {
	sk, err := privateKey(priv)
	if err != nil {
		return nil, err
	}
	return sk.Public().MarshalBinary()
}

// CheckPublicKey reports whether pub decodes as a public key.
func CheckPublicKey(pub []byte) error {
	if len(pub) != PublicKeySize {
		return ErrKey
	}
	if _, err := scheme.UnmarshalBinaryPublicKey(pub); err != nil {
		return ErrKey
	}
	return nil
}

func privateKey(priv []byte) (kem.PrivateKey, error) {
	if len(priv) != PrivateKeySize {
		return nil, ErrKey
	}
	sk, err := scheme.UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, ErrKey
	}
	return sk, nil
}

// Seal encrypts plaintext to pub with the given info and associated data.
func Seal(pub, info, aad, plaintext []byte) ([]byte, error) {
	if err := CheckPublicKey(pub); err != nil {
		return nil, err
	}
	pk, _ := scheme.UnmarshalBinaryPublicKey(pub)
	snd, err := suite.NewSender(pk, info)
	if err != nil {
		return nil, ErrKey
	}
	enc, sealer, err := snd.Setup(rand.Reader)
	if err != nil {
		return nil, ErrKey
	}
	ct, err := sealer.Seal(plaintext, aad)
	if err != nil {
		return nil, err
	}
	return append(enc, ct...), nil
}

// Open decrypts a message sealed to the public half of priv.
func Open(priv, info, aad, sealed []byte) ([]byte, error) {
	sk, err := privateKey(priv)
	if err != nil {
		return nil, err
	}
	if len(sealed) < EncSize+Overhead {
		return nil, ErrOpen
	}
	rcv, err := suite.NewReceiver(sk, info)
	if err != nil {
		return nil, ErrKey
	}
	opener, err := rcv.Setup(sealed[:EncSize])
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := opener.Open(sealed[EncSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
