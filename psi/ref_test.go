package psi

// Slow, obviously-correct math/big references, independent of circl's field
// code, used to check the fast paths.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"testing"
)

var (
	bigP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	bigA = big.NewInt(486662)
)

// leInt reads b as a little-endian integer (all 256 bits).
func leInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

// leElement encodes 0 ≤ x < 2^256 as 32 bytes little-endian.
func leElement(x *big.Int) Element {
	var e Element
	be := x.FillBytes(make([]byte, 32))
	for i := range be {
		e[31-i] = be[i]
	}
	return e
}

// beHex parses a big-endian hex field element (as RFC 9380's vectors give them).
func beHex(t testing.TB, s string) *big.Int {
	t.Helper()
	x, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad hex %q", s)
	}
	return x
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func mod(x *big.Int) *big.Int { return x.Mod(x, bigP) }

// curveRHS returns u³ + A·u² + u mod p.
func curveRHS(u *big.Int) *big.Int {
	u2 := new(big.Int).Mul(u, u)
	r := new(big.Int).Mul(u2, u)
	r.Add(r, new(big.Int).Mul(bigA, u2))
	r.Add(r, u)
	return mod(r)
}

// onCurve reports whether u is the u-coordinate of a point of Curve25519
// proper (not only of its twist).
func onCurve(u *big.Int) bool { return big.Jacobi(curveRHS(u), bigP) >= 0 }

// refElligator2 is RFC 9380 §6.7.1 map_to_curve_elligator2, u-coordinate
// only, for Curve25519 (Z = 2), written directly from the RFC.
func refElligator2(r *big.Int) *big.Int {
	den := mod(new(big.Int).Add(big.NewInt(1), new(big.Int).Mul(big.NewInt(2), new(big.Int).Mul(r, r))))
	x1 := new(big.Int).ModInverse(den, bigP)
	x1 = mod(x1.Mul(x1, new(big.Int).Neg(bigA)))
	if big.Jacobi(curveRHS(x1), bigP) >= 0 {
		return x1
	}
	return mod(new(big.Int).Sub(new(big.Int).Neg(x1), bigA))
}

// refDigest is the digest HashID maps, built byte by byte.
func refDigest(jobID string, id []byte) []byte {
	var b []byte
	b = append(b, "unseen/psi/v1"...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(jobID)))
	b = append(b, jobID...)
	b = append(b, id...)
	d := sha256.Sum256(b)
	return d[:]
}

// refHashID is HashID computed with the references above.
func refHashID(jobID string, id []byte) Element {
	d := refDigest(jobID, id)
	d[31] &= 0x7f
	return leElement(refElligator2(mod(leInt(d))))
}

// xDouble returns the u-coordinate of 2P for a point P with u-coordinate x,
// or ok = false if 2P is the point at infinity. Valid on the curve and on
// its twist alike (the formula does not involve B).
func xDouble(x *big.Int) (*big.Int, bool) {
	x2 := new(big.Int).Mul(x, x)
	num := new(big.Int).Sub(x2, big.NewInt(1))
	num = mod(num.Mul(num, num))
	den := new(big.Int).Add(x2, new(big.Int).Mul(bigA, x))
	den.Add(den, big.NewInt(1))
	den = mod(den.Mul(den, new(big.Int).Mul(big.NewInt(4), x)))
	if den.Sign() == 0 {
		return nil, false
	}
	return mod(num.Mul(num, new(big.Int).ModInverse(den, bigP))), true
}

// xOrder returns the order of a point with u-coordinate x if it divides 8,
// else 0.
func xOrder(x *big.Int) int {
	cur := mod(new(big.Int).Set(x))
	for order := 1; order <= 4; order *= 2 {
		next, ok := xDouble(cur)
		if !ok {
			return 2 * order
		}
		cur = next
	}
	return 0
}
