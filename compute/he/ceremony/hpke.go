package ceremony

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"github.com/unseen-data/unseen/compute/he"
)

var suite = hpke.NewSuite(hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)

const (
	hpkeInfo = "unseen/ceremony/shamir/v1"
	// LabelSealedShamirShare is the envelope label of an HPKE-sealed Shamir share.
	LabelSealedShamirShare = "ceremony/sealed-shamir-share/v1"
	aeadOverhead           = 16
)

func kemScheme() kem.Scheme { return hpke.KEM_X25519_HKDF_SHA256.Scheme() }

// HPKEKeyPair is a node's X25519 key pair for receiving Shamir shares.
type HPKEKeyPair struct {
	pub  []byte
	priv kem.PrivateKey
}

// NewHPKEKeyPair generates a key pair.
func NewHPKEKeyPair() (*HPKEKeyPair, error) {
	pk, sk, err := kemScheme().GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	pub, err := pk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &HPKEKeyPair{pub: pub, priv: sk}, nil
}

// Public is the 32-byte public key to register in the Setup.
func (k *HPKEKeyPair) Public() []byte { return append([]byte(nil), k.pub...) }

// MarshalBinary is the private key (32 bytes). Keep it secret.
func (k *HPKEKeyPair) MarshalBinary() ([]byte, error) { return k.priv.MarshalBinary() }

// UnmarshalHPKEKeyPair restores a key pair from MarshalBinary's output.
func UnmarshalHPKEKeyPair(b []byte) (*HPKEKeyPair, error) {
	s := kemScheme()
	if len(b) != s.PrivateKeySize() {
		return nil, errors.New("he: HPKE private key length mismatch")
	}
	sk, err := s.UnmarshalBinaryPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("he: HPKE private key: %w", err)
	}
	pub, err := sk.Public().MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &HPKEKeyPair{pub: pub, priv: sk}, nil
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
	return kemScheme().CiphertextSize() + n + aeadOverhead, nil
}

func seal(s *Setup, from, to NodeID, plaintext []byte) ([]byte, error) {
	pkb, err := s.HPKEPublicKey(to)
	if err != nil {
		return nil, err
	}
	pk, err := kemScheme().UnmarshalBinaryPublicKey(pkb)
	if err != nil {
		return nil, err
	}
	snd, err := suite.NewSender(pk, []byte(hpkeInfo))
	if err != nil {
		return nil, err
	}
	enc, sealer, err := snd.Setup(rand.Reader)
	if err != nil {
		return nil, err
	}
	ct, err := sealer.Seal(plaintext, shamirAAD(s, from, to))
	if err != nil {
		return nil, err
	}
	return append(enc, ct...), nil
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
	encLen := kemScheme().CiphertextSize()
	rcv, err := suite.NewReceiver(kp.priv, []byte(hpkeInfo))
	if err != nil {
		return nil, err
	}
	opener, err := rcv.Setup(sealed[:encLen])
	if err != nil {
		return nil, ErrSealed
	}
	pt, err := opener.Open(sealed[encLen:], shamirAAD(s, from, to))
	if err != nil {
		return nil, ErrSealed
	}
	return pt, nil
}
