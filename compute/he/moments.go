package he

import (
	"errors"
	"math/big"
)

// Moments are the exact aggregates a mean and a variance come from: the
// count n, Σx and Σx² (never CKKS: all three are decrypted exactly). Σx
// and Σx² are big integers: over 10^8 rows of |x| ≤ 2^40 they pass 2^63. A
// nil Sum or SumSq is 0.
type Moments struct {
	N     int64
	Sum   *big.Int
	SumSq *big.Int
}

// ErrEmpty is returned for statistics over zero rows.
var ErrEmpty = errors.New("he: statistics over zero rows")

func orZero(x *big.Int) *big.Int {
	if x == nil {
		return new(big.Int)
	}
	return x
}

// MeanRat is Σx / n exactly.
func (m Moments) MeanRat() (*big.Rat, error) {
	if m.N <= 0 {
		return nil, ErrEmpty
	}
	return new(big.Rat).SetFrac(orZero(m.Sum), big.NewInt(m.N)), nil
}

// VarianceRat is the population variance (n·Σx² − (Σx)²) / n² exactly.
func (m Moments) VarianceRat() (*big.Rat, error) {
	if m.N <= 0 {
		return nil, ErrEmpty
	}
	n := big.NewInt(m.N)
	num := new(big.Int).Mul(n, orZero(m.SumSq))
	s := new(big.Int).Set(orZero(m.Sum))
	num.Sub(num, s.Mul(s, s))
	if num.Sign() < 0 {
		return nil, errors.New("he: inconsistent moments (negative variance)")
	}
	return new(big.Rat).SetFrac(num, new(big.Int).Mul(n, n)), nil
}

// Mean is MeanRat rounded to the nearest float64.
func (m Moments) Mean() (float64, error) {
	r, err := m.MeanRat()
	if err != nil {
		return 0, err
	}
	f, _ := r.Float64()
	return f, nil
}

// Variance is VarianceRat rounded to the nearest float64.
func (m Moments) Variance() (float64, error) {
	r, err := m.VarianceRat()
	if err != nil {
		return 0, err
	}
	f, _ := r.Float64()
	return f, nil
}

// Equal reports whether two moments are the same numbers.
func (m Moments) Equal(o Moments) bool {
	return m.N == o.N && orZero(m.Sum).Cmp(orZero(o.Sum)) == 0 && orZero(m.SumSq).Cmp(orZero(o.SumSq)) == 0
}
