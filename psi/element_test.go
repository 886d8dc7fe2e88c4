package psi

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/stretchr/testify/require"
)

// libsodiumBlocklist is libsodium's has_small_order() list for X25519
// (crypto_scalarmult/curve25519/ref10/x25519_ref10.c), transcribed as hex;
// libsodium compares it ignoring bit 255.
var libsodiumBlocklist = []string{
	"0000000000000000000000000000000000000000000000000000000000000000", // 0
	"0100000000000000000000000000000000000000000000000000000000000000", // 1
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p−1
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p ≡ 0
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1 ≡ 1
}

// lowOrderEncodings returns every 32-byte string X25519 reads as a
// low-order point: the blocklist with bit 255 clear and set.
func lowOrderEncodings(t *testing.T) []Element {
	var out []Element
	for _, h := range libsodiumBlocklist {
		e := Element(mustHex(t, h))
		out = append(out, e)
		e[31] |= 0x80
		out = append(out, e)
	}
	return out
}

// TestLowOrderDerivation derives the low-order set independently: the
// u-coordinates whose point has order dividing 8 are exactly the reduced
// blocklist, and lowOrder holds exactly those.
func TestLowOrderDerivation(t *testing.T) {
	want := map[string]int{} // reduced u (hex) -> order
	for _, h := range libsodiumBlocklist {
		u := mod(leInt(mustHex(t, h)))
		o := xOrder(u)
		require.NotZero(t, o, "blocklist entry %s is not of small order", h)
		want[u.Text(16)] = o
	}
	require.Len(t, want, 5, "0, 1, −1 and two order-8 points")
	// Orders: 0 → 2; 1 and −1 → 4; the others → 8. Points of order 8 exist
	// only on the curve (the twist's cofactor is 4).
	require.Equal(t, 2, want["0"])
	require.Equal(t, 4, want["1"])
	got := map[string]bool{}
	for i := range lowOrder {
		e := Element(lowOrder[i])
		u := leInt(e[:])
		_, ok := want[u.Text(16)]
		require.True(t, ok, "lowOrder[%d] not in the blocklist", i)
		got[u.Text(16)] = true
	}
	require.Len(t, got, len(want))

	// The order-8 points' doubles are the order-4 point u = 1, on the curve.
	for u, o := range want {
		if o == 8 {
			x, _ := new(big.Int).SetString(u, 16)
			d, ok := xDouble(x)
			require.True(t, ok)
			require.Equal(t, "1", d.Text(16))
			require.True(t, onCurve(x))
		}
	}
	require.False(t, onCurve(new(big.Int).Sub(bigP, big.NewInt(1))), "u = −1 is on the twist")
}

func TestLowOrderRejected(t *testing.T) {
	var secret x25519.Key
	_, _ = rand.Read(secret[:])
	k := &Key{s: secret}
	good := HashID("job", []byte("x"))
	for _, e := range lowOrderEncodings(t) {
		// They really are low order: X25519 with any key gives zero.
		var out x25519.Key
		in := x25519.Key(e)
		x25519.Shared(&out, &secret, &in)
		require.Equal(t, x25519.Key{}, out, "%x", e)

		require.True(t, isLowOrder(&e), "%x", e)
		_, err := DecodeElements(e[:], 1)
		require.ErrorIs(t, err, ErrInvalidPoint, "%x", e)
		// Also when hidden in the middle of a list.
		_, err = DecodeElements(EncodeElements([]Element{good, e, good}), 3)
		require.ErrorIs(t, err, ErrInvalidPoint, "%x", e)

		dst := make([]Element, 3)
		err = k.Blind(dst, []Element{good, e, good})
		require.ErrorIs(t, err, ErrInvalidPoint, "%x", e)
		require.ErrorContains(t, err, "element 1")
	}
}

// TestZeroResultRejected reaches the ladder's all-zero check, which
// Blind's low-order filter normally shields.
func TestZeroResultRejected(t *testing.T) {
	k, err := DeriveKey(bytes.Repeat([]byte{1}, 32), "job", testSpecHash)
	require.NoError(t, err)
	for _, e := range lowOrderEncodings(t) {
		var dst Element
		require.ErrorIs(t, k.ladder(&dst, &e), ErrZeroResult, "%x", e)
	}
	h := HashID("job", []byte("x"))
	var dst Element
	require.NoError(t, k.ladder(&dst, &h))
}

func TestDecodeLengths(t *testing.T) {
	e := HashID("job", []byte("a"))
	for _, n := range []int{1, 31, 33, 63, 65} {
		_, err := DecodeElements(make([]byte, n), 10)
		require.ErrorIs(t, err, ErrLength, "%d bytes", n)
	}
	two := EncodeElements([]Element{e, e})
	_, err := DecodeElements(two, 1)
	require.ErrorIs(t, err, ErrTooMany)
	_, err = DecodeElements(two, -1)
	require.ErrorIs(t, err, ErrTooMany)
	got, err := DecodeElements(two, 2)
	require.NoError(t, err)
	require.Equal(t, []Element{e, e}, got)
	got, err = DecodeElements(nil, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestDecodeNonCanonical(t *testing.T) {
	// p+2 … p+18 (2^255−1): non-canonical encodings of 2 … 18, not low order.
	for v := int64(2); v <= 18; v++ {
		x := new(big.Int).Add(bigP, big.NewInt(v))
		e := leElement(x)
		_, err := DecodeElements(e[:], 1)
		require.ErrorIs(t, err, ErrNonCanonical, "p+%d", v)
	}
	// A valid element with bit 255 set.
	e := HashID("job", []byte("a"))
	e[31] |= 0x80
	_, err := DecodeElements(e[:], 1)
	require.ErrorIs(t, err, ErrNonCanonical)
	// Canonical values just below p that are not low order are accepted.
	for v := int64(2); v <= 10; v++ {
		x := new(big.Int).Sub(bigP, big.NewInt(v))
		e := leElement(x)
		_, err := DecodeElements(e[:], 1)
		require.NoError(t, err, "p−%d", v)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	es := make([]Element, 50)
	for i := range es {
		es[i] = HashID("job", []byte{byte(i)})
	}
	b := EncodeElements(es)
	require.Len(t, b, 50*ElementSize)
	got, err := DecodeElements(b, 50)
	require.NoError(t, err)
	require.Equal(t, es, got)
	require.Equal(t, Token(es[3][:16]), es[3].Token())
}
