package psi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"io"

	fp "github.com/cloudflare/circl/math/fp25519"
)

// domain separates this protocol's hashes and keys from any other use of
// the same inputs; bump the version if the encoding changes.
const domain = "unseen/psi/v1"

var (
	feOne = fp.Elt{1}
	feA   = fp.Elt{0x06, 0x6d, 0x07} // 486662, Curve25519's A
	feA2  fp.Elt                     // A²
)

func init() { fp.Mul(&feA2, &feA, &feA) }

// HashID maps a normalised ID to a point of Curve25519 for job jobID:
// Elligator 2 applied to SHA-256(domain ‖ uint64be(len(jobID)) ‖ jobID ‖ id).
// See the package documentation for why Elligator 2 rather than the digest
// itself. It runs in time independent of the ID's value.
func HashID(jobID string, normalisedID []byte) Element {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(jobID)))
	io.WriteString(h, domain)
	h.Write(n[:])
	io.WriteString(h, jobID)
	h.Write(normalisedID)
	var r fp.Elt
	h.Sum(r[:0])  // r has room for the digest: no allocation
	r[31] &= 0x7f // a uniform value below 2^255; reduction mod p biases it by 19/2^255
	var e Element
	x := elligator2(&r)
	_ = fp.ToBytes(e[:], &x) // cannot fail: the slice has fp.Size bytes
	return e
}

// elligator2 returns the u-coordinate of RFC 9380's
// map_to_curve_elligator2(r) for Curve25519 (A = 486662, B = 1, Z = 2):
//
//	x1 = −A / (1 + 2r²);  x = x1 if g(x1) = x1³ + A·x1² + x1 is square, else −x1 − A.
//
// It uses one exponentiation for both the inversion and the square test:
// with d = 1 + 2r² and N = A·(A²(d − 1) − d²), g(x1) = N/d³, which has the
// quadratic character of v = N·d. For e = v^((p−1)/4) = v·s², s = v^((p−5)/8),
// e ∈ {±1, ±√−1}, e² is v's character, and 1/v = s²·e⁻¹ = s²·e³, so
// 1/d = N/v. d ≠ 0 because −1/2 is not a square mod p, and N ≠ 0 because
// x1 ≠ 0 and x² + Ax + 1 has no root in F_p, so v ≠ 0. Constant time.
func elligator2(r *fp.Elt) fp.Elt {
	var d, t, nn, v, s, s2, e, e2, e3, invD, x1, x2 fp.Elt
	fp.Sqr(&t, r)
	fp.Add(&d, &t, &t)
	fp.Add(&d, &d, &feOne) // d = 1 + 2r²
	fp.Sub(&t, &d, &feOne)
	fp.Mul(&t, &t, &feA2) // A²(d − 1)
	fp.Sqr(&nn, &d)
	fp.Sub(&t, &t, &nn)
	fp.Mul(&nn, &t, &feA) // N = A(A²(d − 1) − d²)
	fp.Mul(&v, &nn, &d)   // v = N·d
	pow22523(&s, &v)      // s = v^((p−5)/8)
	fp.Sqr(&s2, &s)
	fp.Mul(&e, &s2, &v) // e = v^((p−1)/4)
	fp.Sqr(&e2, &e)     // e² = χ(v)
	square := equal(&e2, &feOne)
	fp.Mul(&e3, &e2, &e)
	fp.Mul(&t, &s2, &e3)   // 1/v
	fp.Mul(&invD, &t, &nn) // 1/d
	fp.Mul(&x1, &feA, &invD)
	fp.Neg(&x1, &x1) // x1 = −A/d
	fp.Neg(&x2, &x1)
	fp.Sub(&x2, &x2, &feA) // x2 = −x1 − A
	fp.Cmov(&x2, &x1, uint(square))
	fp.Modp(&x2)
	return x2
}

// equal compares two field elements in constant time, returning 1 or 0.
func equal(a, b *fp.Elt) int {
	x, y := *a, *b
	fp.Modp(&x)
	fp.Modp(&y)
	return subtle.ConstantTimeCompare(x[:], y[:])
}

// sqrN sets z = x^(2^n), n ≥ 1.
func sqrN(z, x *fp.Elt, n int) {
	fp.Sqr(z, x)
	for i := 1; i < n; i++ {
		fp.Sqr(z, z)
	}
}

// pow22523 sets z = x^(2^252 − 3) = x^((p−5)/8) (the addition chain of
// ref10's fe_pow22523).
func pow22523(z, x *fp.Elt) {
	var t0, t1, t2 fp.Elt
	fp.Sqr(&t0, x)        // 2
	sqrN(&t1, &t0, 2)     // 8
	fp.Mul(&t1, x, &t1)   // 9
	fp.Mul(&t0, &t0, &t1) // 11
	fp.Sqr(&t0, &t0)      // 22
	fp.Mul(&t0, &t1, &t0) // 31 = 2^5 − 1
	sqrN(&t1, &t0, 5)     // 2^10 − 2^5
	fp.Mul(&t0, &t1, &t0) // 2^10 − 1
	sqrN(&t1, &t0, 10)    // 2^20 − 2^10
	fp.Mul(&t1, &t1, &t0) // 2^20 − 1
	sqrN(&t2, &t1, 20)    // 2^40 − 2^20
	fp.Mul(&t1, &t2, &t1) // 2^40 − 1
	sqrN(&t1, &t1, 10)    // 2^50 − 2^10
	fp.Mul(&t0, &t1, &t0) // 2^50 − 1
	sqrN(&t1, &t0, 50)    // 2^100 − 2^50
	fp.Mul(&t1, &t1, &t0) // 2^100 − 1
	sqrN(&t2, &t1, 100)   // 2^200 − 2^100
	fp.Mul(&t1, &t2, &t1) // 2^200 − 1
	sqrN(&t1, &t1, 50)    // 2^250 − 2^50
	fp.Mul(&t0, &t1, &t0) // 2^250 − 1
	sqrN(&t0, &t0, 2)     // 2^252 − 4
	fp.Mul(z, &t0, x)     // 2^252 − 3
}
