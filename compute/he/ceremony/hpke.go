package ceremony

import (
	"errors"
	"fmt"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/internal/hpke"
)

const (
	hpkeInfo = "unseen/ceremony/shamir/v1"
	// LabelSealedShamirShare is the envelope label of an HPKE-sealed Shamir share.
	LabelSealedShamirShare = "ceremony/sealed-shamir-share/v1"
)

// HPKEKeyPair is a node's X25519 key pair for receiving Shamir shares.
type HPKEKeyPair struct {
	pub  []byte
	priv []byte
}

// NewHPKEKeyPair makes a fresh key pair.
func NewHPKEKeyPair() (*HPKEKeyPair, error) {
	pub, priv, err := hpke.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &HPKEKeyPair{pub: pub, priv: priv}, nil
}

// Public returns the encoded public key.
func (k *HPKEKeyPair) Public() []byte { return append([]byte(nil), k.pub...) }

// MarshalBinary encodes the private key.
func (k *HPKEKeyPair) MarshalBinary() ([]byte, error) { return append([]byte(nil), k.priv...), nil }

// UnmarshalHPKEKeyPair decodes a private key.
func UnmarshalHPKEKeyPair(b []byte) (*HPKEKeyPair, error) {
	if len(b) != hpke.PrivateKeySize {
		return nil, errors.New("he: HPKE private key length mismatch")
	}
	pub, err := hpke.PublicOf(b)
	if err != nil {
		return nil, fmt.Errorf("he: HPKE private key: %w", err)
	}
	return &HPKEKeyPair{pub: pub, priv: append([]byte(nil), b...)}, nil
}

func shamirAAD(s *Setup, from, to NodeID) []byte {
	d := s.Digest()
	ph := s.ps.Hash()
	b := []byte("unseen/shamir-aad/v1")
	b = appendLP(b, []byte(s.ceremonyID))
	b = appendLP(b, ph[:])
	b = appendLP(b, d[:])
	b = appendLP(b, []byte(from))
	b = appendLP(b, []byte(to))
	return b
}

// SealedShareSize is the exact payload size of LabelSealedShamirShare.
func SealedShareSize(ps *he.ParamSet) (int, error) {
	n, err := ps.WireSize(he.LabelShamirShare, ps.MaxLevel())
	if err != nil {
		return 0, err
	}
	return hpke.EncSize + n + hpke.Overhead, nil
}

func seal(s *Setup, from, to NodeID, plaintext []byte) ([]byte, error) {
	pkb, err := s.HPKEPublicKey(to)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pkb, []byte(hpkeInfo), shamirAAD(s, from, to), plaintext)
}

// ErrSealed is returned when a sealed share does not open: wrong recipient,
// sender, ceremony or setup, or tampering.
var ErrSealed = errors.New("he: sealed Shamir share does not open")

func open(s *Setup, kp *HPKEKeyPair, from, to NodeID, sealed []byte) ([]byte, error) {
	want, err := SealedShareSize(s.ps)
	if err != nil {
		return nil, err
	}
	if len(sealed) != want {
		return nil, fmt.Errorf("%w: length %d, want %d", ErrSealed, len(sealed), want)
	}
	pt, err := hpke.Open(kp.priv, []byte(hpkeInfo), shamirAAD(s, from, to), sealed)
	if err != nil {
		return nil, ErrSealed
	}
	return pt, nil
}
