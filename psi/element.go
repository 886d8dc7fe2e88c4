package psi

import (
	"crypto/subtle"
	"errors"
	"fmt"

	fp "github.com/cloudflare/circl/math/fp25519"
)

const (
	// ElementSize is the size in bytes of an encoded Element.
	ElementSize = 32
	// TokenSize is the size in bytes of a Token.
	TokenSize = 16
)

// Errors returned by this package. Functions may wrap them with context;
// test with errors.Is.
var (
	ErrInvalidPoint   = errors.New("psi: invalid point")
	ErrNonCanonical   = errors.New("psi: non-canonical point encoding")
	ErrZeroResult     = errors.New("psi: all-zero scalar multiplication result")
	ErrLength         = errors.New("psi: invalid length")
	ErrTooMany        = errors.New("psi: too many elements")
	ErrShortSecret    = errors.New("psi: node secret shorter than 32 bytes")
	ErrEmptyJobID     = errors.New("psi: empty job id, or one holding a NUL byte")
	ErrSpecHash       = errors.New("psi: a spec hash is 32 bytes")
	ErrOwnList        = errors.New("psi: refusing to reblind own list")
	ErrRange          = errors.New("psi: out of range")
	ErrInvalidRequest = errors.New("psi: invalid request")
)

// Element is a point of Curve25519 (or, as far as the X25519 function is
// concerned, of its twist) given by its u-coordinate, 32 bytes
// little-endian.
type Element [ElementSize]byte

// Token is the first TokenSize bytes of a fully blinded Element: what the
// coordinator keeps and joins on. 128 bits keep accidental collisions
// negligible (about n²/2^129 for n elements) at half the memory.
type Token [TokenSize]byte

// Token returns e's first TokenSize bytes.
func (e Element) Token() Token { return Token(e[:TokenSize]) }

// lowOrder holds the u-coordinates, reduced mod p, of every point of small
// order on Curve25519 and its twist: 0 (order 2), 1 (order 4 on the curve),
// p−1 (order 4 on the twist) and the two x-coordinates of the order-8
// points of the curve. The twist has cofactor 4, so it adds no others.
// Together with the non-canonical p and p+1 these are libsodium's seven.
var lowOrder = [...]fp.Elt{
	{},
	{1},
	{
		0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae,
		0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd,
		0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
	},
	{
		0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24,
		0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86,
		0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
	},
	{
		0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
}

// isLowOrder reports whether X25519 would treat e as a low-order point: it
// clears bit 255 and reduces mod p first, exactly as the ladder reads its
// input, so every encoding of a low-order point is caught.
func isLowOrder(e *Element) bool {
	x := fp.Elt(*e)
	x[31] &= 0x7f
	fp.Modp(&x)
	found := 0
	for i := range lowOrder {
		found |= subtle.ConstantTimeCompare(x[:], lowOrder[i][:])
	}
	return found == 1
}

// isCanonical reports whether e is the unique encoding of its value: bit 255
// clear and value below p.
func isCanonical(e *Element) bool {
	if e[31]&0x80 != 0 {
		return false
	}
	x := fp.Elt(*e)
	fp.Modp(&x)
	return x == fp.Elt(*e)
}

// validate is the check applied to every element received from another
// party: low-order first, so that every encoding of a low-order point
// reports ErrInvalidPoint, then canonicity.
func validate(e *Element) error {
	if isLowOrder(e) {
		return ErrInvalidPoint
	}
	if !isCanonical(e) {
		return ErrNonCanonical
	}
	return nil
}

// validateAll validates each element, reporting the first bad index.
func validateAll(es []Element) error {
	for i := range es {
		if err := validate(&es[i]); err != nil {
			return fmt.Errorf("%w (element %d)", err, i)
		}
	}
	return nil
}

// EncodeElements returns the concatenation of es' encodings.
func EncodeElements(es []Element) []byte {
	b := make([]byte, 0, len(es)*ElementSize)
	for i := range es {
		b = append(b, es[i][:]...)
	}
	return b
}

// DecodeElements parses a concatenation of at most max canonical,
// non-low-order elements. It checks the count before allocating, so max
// also bounds the memory an attacker can make it use.
func DecodeElements(b []byte, max int) ([]Element, error) {
	if len(b)%ElementSize != 0 {
		return nil, ErrLength
	}
	n := len(b) / ElementSize
	if n > max {
		return nil, ErrTooMany
	}
	es := make([]Element, n)
	for i := range es {
		copy(es[i][:], b[i*ElementSize:])
	}
	if err := validateAll(es); err != nil {
		return nil, err
	}
	return es, nil
}
