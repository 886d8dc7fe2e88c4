package worker

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The discrete Laplace sampler has the right spread: mean ≈ 0 and variance
// 2α/(1−α)² for α = e^(−ε/Δ).
func TestGeometricNoise(t *testing.T) {
	const n = 200000
	for _, c := range []struct {
		eps float64
		d   int64
	}{{0.5, 1}, {1, 1}, {0.5, 10}} {
		var sum, sq float64
		for range n {
			x := float64(geometric(c.eps, c.d))
			sum += x
			sq += x * x
		}
		mean := sum / n
		variance := sq/n - mean*mean
		a := math.Exp(-c.eps / float64(c.d))
		want := 2 * a / ((1 - a) * (1 - a))
		require.InDelta(t, 0, mean, 6*math.Sqrt(want/n), "ε=%g Δ=%d mean", c.eps, c.d)
		require.InEpsilon(t, want, variance, 0.05, "ε=%g Δ=%d variance", c.eps, c.d)
	}
	require.Zero(t, geometric(1, 0))
}
