// Package noise samples the discrete Laplace distribution exactly, for the
// differential privacy of released counts and sums.
//
// It follows Canonne, Kamath and Steinke, "The Discrete Gaussian for
// Differential Privacy" (NeurIPS 2020), Algorithms 1 and 2: the scale is a
// rational number, every step is a comparison of uniform random integers,
// and no floating point is used anywhere in the sampling path. A float
// sampler fails in two ways that matter here: exp(−ε/Δ) rounds to 1 once Δ
// is large (a value bound of 10^8 fen), so every draw is 0; and Δ² for a sum
// of squares overflows int64. Big integers avoid both.
//
// Who learns what: the caller learns the draw; the randomness comes from the
// io.Reader it passes (crypto/rand.Reader in production, a seeded reader in
// tests only: noise an observer can predict is no noise).
package noise

import (
	"errors"
	"io"
	"math/big"
	"math/bits"
)

// ErrScale is returned for a scale that is not a positive rational.
var ErrScale = errors.New("noise: scale must be positive")

var one = big.NewInt(1)

// source draws uniform integers from r by rejection, reading whole bytes.
type source struct {
	r   io.Reader
	buf []byte
	u   big.Int // scratch for big draws
}

func newSource(r io.Reader) *source { return &source{r: r, buf: make([]byte, 0, 64)} }

func (s *source) read(n int) ([]byte, error) {
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// uint64n returns a uniform integer in [0, n), n ≥ 1.
func (s *source) uint64n(n uint64) (uint64, error) {
	if n == 1 {
		return 0, nil
	}
	l := bits.Len64(n - 1)
	mask := uint64(1)<<l - 1
	if l == 64 {
		mask = ^uint64(0)
	}
	nb := (l + 7) / 8
	for {
		b, err := s.read(nb)
		if err != nil {
			return 0, err
		}
		var x uint64
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
		x &= mask
		if x < n {
			return x, nil
		}
	}
}

// intn sets z to a uniform integer in [0, n), n ≥ 1, and returns z.
func (s *source) intn(z, n *big.Int) (*big.Int, error) {
	if n.IsUint64() {
		x, err := s.uint64n(n.Uint64())
		if err != nil {
			return nil, err
		}
		return z.SetUint64(x), nil
	}
	m := new(big.Int).Sub(n, one)
	l := m.BitLen()
	nb := (l + 7) / 8
	top := byte(0xff >> (8*nb - l))
	for {
		b, err := s.read(nb)
		if err != nil {
			return nil, err
		}
		b[0] &= top
		z.SetBytes(b)
		if z.Cmp(n) < 0 {
			return z, nil
		}
	}
}

// bernoulli returns true with probability num/den, 0 ≤ num ≤ den, den ≥ 1.
func (s *source) bernoulli(num, den *big.Int) (bool, error) {
	u, err := s.intn(&s.u, den)
	if err != nil {
		return false, err
	}
	return u.Cmp(num) < 0, nil
}

// bernoulliSmall returns true with probability num/den for small integers.
func (s *source) bernoulliSmall(num, den uint64) (bool, error) {
	u, err := s.uint64n(den)
	return u < num, err
}

// expFrac returns true with probability exp(−n/d) for 0 ≤ n ≤ d (CKS
// Algorithm 1, γ ∈ [0, 1]): draw Bernoulli(γ/K) for K = 1, 2, … until one
// fails; the K at which it fails is odd with probability exp(−γ).
func (s *source) expFrac(n, d *big.Int) (bool, error) {
	var dk, k big.Int
	for K := int64(1); ; K++ {
		dk.Mul(d, k.SetInt64(K))
		a, err := s.bernoulli(n, &dk)
		if err != nil {
			return false, err
		}
		if !a {
			return K%2 == 1, nil
		}
	}
}

// expMinusOne returns true with probability exp(−1).
func (s *source) expMinusOne() (bool, error) {
	for K := uint64(1); ; K++ {
		a, err := s.bernoulliSmall(1, K)
		if err != nil {
			return false, err
		}
		if !a {
			return K%2 == 1, nil
		}
	}
}

// BernoulliExp returns true with probability exp(−γ), for a rational γ ≥ 0,
// reading its randomness from r.
func BernoulliExp(r io.Reader, gamma *big.Rat) (bool, error) {
	if gamma.Sign() < 0 {
		return false, errors.New("noise: γ must not be negative")
	}
	s := newSource(r)
	n, d := gamma.Num(), gamma.Denom()
	q, m := new(big.Int).QuoRem(n, d, new(big.Int))
	// exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)).
	for i := new(big.Int); i.Cmp(q) < 0; i.Add(i, one) {
		ok, err := s.expMinusOne()
		if err != nil || !ok {
			return false, err
		}
	}
	return s.expFrac(m, d)
}

// Laplace returns one draw of the discrete Laplace distribution of the
// given scale: P(Y = y) = (1−α)/(1+α) · α^|y| with α = exp(−1/scale). For an
// integer query of sensitivity Δ, scale Δ/ε gives ε-differential privacy.
// The draw is exact (CKS Algorithm 2); r supplies the randomness.
func Laplace(r io.Reader, scale *big.Rat) (*big.Int, error) {
	if scale == nil || scale.Sign() <= 0 {
		return nil, ErrScale
	}
	return newSource(r).laplace(scale.Num(), scale.Denom())
}

// laplace samples with scale t/s, t, s ≥ 1.
func (s *source) laplace(t, sd *big.Int) (*big.Int, error) {
	var u, x, y big.Int
	for {
		// X = U + t·V is geometric with P(X = x) ∝ exp(−x/t): U uniform
		// below t, kept with probability exp(−U/t), and V ≥ 0 geometric
		// with P(V = v) ∝ exp(−v).
		if _, err := s.intn(&u, t); err != nil {
			return nil, err
		}
		keep, err := s.expFrac(&u, t)
		if err != nil {
			return nil, err
		}
		if !keep {
			continue
		}
		v := int64(0)
		for {
			more, err := s.expMinusOne()
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
			v++
		}
		x.Mul(t, y.SetInt64(v))
		x.Add(&x, &u)
		// Y = ⌊X/s⌋ is geometric with P(Y = y) ∝ exp(−y·s/t).
		y.Quo(&x, sd)
		neg, err := s.bernoulliSmall(1, 2)
		if err != nil {
			return nil, err
		}
		if neg && y.Sign() == 0 {
			continue // otherwise 0 would be drawn twice as often
		}
		if neg {
			y.Neg(&y)
		}
		return new(big.Int).Set(&y), nil
	}
}

// Scale returns Δ/ε as an exact rational, ε > 0.
func Scale(sensitivity *big.Int, epsilon *big.Rat) (*big.Rat, error) {
	if sensitivity == nil || sensitivity.Sign() <= 0 || epsilon == nil || epsilon.Sign() <= 0 {
		return nil, ErrScale
	}
	return new(big.Rat).Quo(new(big.Rat).SetInt(sensitivity), epsilon), nil
}
