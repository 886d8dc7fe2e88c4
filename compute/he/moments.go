package he

import (
	"errors"
	"math/big"
)

// Moments are the exact aggregates a mean and a variance come from: the
// count n, Σx and Σx² (never CKKS: all three are decrypted exactly).
type Moments struct {
	N     int64
	Sum   int64
	SumSq int64
}

// ErrEmpty is returned for statistics over zero rows.
var ErrEmpty = errors.New("he: statistics over zero rows")

// MeanRat is Σx / n exactly.
func (m Moments) MeanRat() (*big.Rat, error) {
	if m.N <= 0 {
		return nil, ErrEmpty
	}
	return new(big.Rat).SetFrac(big.NewInt(m.Sum), big.NewInt(m.N)), nil
}

// VarianceRat is the population variance (n·Σx² − (Σx)²) / n² exactly.
func (m Moments) VarianceRat() (*big.Rat, error) {
	if m.N <= 0 {
		return nil, ErrEmpty
	}
	n := big.NewInt(m.N)
	num := new(big.Int).Mul(n, big.NewInt(m.SumSq))
	s := big.NewInt(m.Sum)
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
