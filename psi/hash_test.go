package psi

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"

	fp "github.com/cloudflare/circl/math/fp25519"
	"github.com/stretchr/testify/require"
)

func TestPow22523(t *testing.T) {
	e := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 252), big.NewInt(3))
	for range 50 {
		var x fp.Elt
		_, _ = rand.Read(x[:])
		x[31] &= 0x7f
		var z fp.Elt
		pow22523(&z, &x)
		fp.Modp(&z)
		want := new(big.Int).Exp(mod(leInt(x[:])), e, bigP)
		require.Equal(t, leElement(want), Element(z))
	}
}

// TestHashIDMatchesReference checks HashID against the math/big
// Elligator 2 written straight from RFC 9380, including the field elements
// 0 and p−1 at the edges.
func TestHashIDMatchesReference(t *testing.T) {
	for i := range 200 {
		id := []byte(fmt.Sprintf("44010619%010d", i))
		require.Equal(t, refHashID("job-7", id), HashID("job-7", id), "id %s", id)
	}
	for _, r := range []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(bigP, big.NewInt(1))} {
		x := fp.Elt(leElement(r))
		got := elligator2(&x)
		require.Equal(t, leElement(refElligator2(r)), Element(got), "r = %v", r)
	}
}

// TestHashIDOnCurve shows why HashID uses Elligator 2: raw digests land on
// the twist about half the time, and blinding keeps a point on whichever
// curve it started, so the twist bit would survive into every blinded
// element. HashID's outputs, and everything blinded from them, are on the
// curve.
func TestHashIDOnCurve(t *testing.T) {
	k, err := DeriveKey(bytes.Repeat([]byte{9}, 32), "job", testSpecHash)
	require.NoError(t, err)
	twist, twistKept := 0, 0
	for i := range 200 {
		id := []byte(fmt.Sprint(i))
		d := refDigest("job", id)
		d[31] &= 0x7f
		raw := Element(d)
		rawOn := onCurve(mod(leInt(raw[:])))
		if !rawOn {
			twist++
			var b Element
			require.NoError(t, k.blindOne(&b, &raw))
			if !onCurve(leInt(b[:])) {
				twistKept++
			}
		}

		h := HashID("job", id)
		require.True(t, onCurve(leInt(h[:])), "HashID(%s) on the twist", id)
		var b Element
		require.NoError(t, k.blindOne(&b, &h))
		require.True(t, onCurve(leInt(b[:])), "blinded HashID(%s) on the twist", id)
	}
	require.Greater(t, twist, 60, "raw digests should often be on the twist")
	require.Equal(t, twist, twistKept, "blinding keeps twist points on the twist")
}

func TestHashIDSeparation(t *testing.T) {
	// The job id is length-prefixed: moving bytes between it and the ID
	// changes the hash.
	require.NotEqual(t, HashID("ab", []byte("c")), HashID("a", []byte("bc")))
	require.NotEqual(t, HashID("job1", []byte("x")), HashID("job2", []byte("x")))
	require.NotEqual(t, HashID("job", []byte("x")), HashID("job", []byte("y")))
	require.Equal(t, HashID("job", []byte("x")), HashID("job", []byte("x")))
	e := HashID("job", nil)
	require.NoError(t, validate(&e))
}
