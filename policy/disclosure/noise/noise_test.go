package noise

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// seeded is a deterministic reader for tests only (INSECURE: predictable).
func seeded(i byte) *rand.ChaCha8 {
	var seed [32]byte
	seed[0] = i
	return rand.NewChaCha8(seed)
}

// epsilon is ε as the exact rational of its micro-units, as the plan makes it.
func epsilon(e float64) *big.Rat { return big.NewRat(int64(e*1e6+0.5), 1e6) }

// cdf is P(Y ≤ y) for the discrete Laplace of scale c (float64: test only).
func cdf(y int64, c float64) float64 {
	a := math.Exp(-1 / c)
	if y >= 0 {
		return 1 - math.Exp(-float64(y+1)/c)/(1+a)
	}
	return math.Exp(float64(y)/c) / (1 + a)
}

// chiSquare bins draws at multiples of the scale c and returns Pearson's
// statistic against the exact pmf and its degrees of freedom. Bins expected
// to hold fewer than 5 draws are merged into a neighbour.
func chiSquare(draws []int64, c float64) (float64, int) {
	var edges []int64
	for _, m := range []float64{-4, -3, -2, -1.5, -1, -0.7, -0.5, -0.3, -0.15, 0, 0.15, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 4} {
		e := int64(math.Round(m * c))
		if m > 0 {
			e++ // keep the bins symmetric around 0: [−e, …) and […, e+1)
		}
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	// Bin i is [edges[i-1], edges[i]); bin 0 is below edges[0], the last
	// is from edges[len-1] up.
	n := float64(len(draws))
	probs := make([]float64, len(edges)+1)
	prev := 0.0
	for i, e := range edges {
		p := cdf(e-1, c)
		probs[i] = p - prev
		prev = p
	}
	probs[len(edges)] = 1 - prev
	counts := make([]float64, len(probs))
	for _, d := range draws {
		i := 0
		for i < len(edges) && d >= edges[i] {
			i++
		}
		counts[i]++
	}
	// Merge small bins left to right.
	var P, C []float64
	accP, accC := 0.0, 0.0
	for i := range probs {
		accP += probs[i]
		accC += counts[i]
		if accP*n >= 5 {
			P, C = append(P, accP), append(C, accC)
			accP, accC = 0, 0
		}
	}
	if len(P) > 0 {
		P[len(P)-1] += accP
		C[len(C)-1] += accC
	}
	stat := 0.0
	for i := range P {
		e := P[i] * n
		stat += (C[i] - e) * (C[i] - e) / e
	}
	return stat, len(P) - 1
}

// critical is the χ² value with tail probability about 3·10⁻⁷ (z = 5, by
// Wilson and Hilferty): a correct sampler fails it once in millions of runs.
func critical(df int) float64 {
	k := float64(df)
	h := 2 / (9 * k)
	return k * math.Pow(1-h+5*math.Sqrt(h), 3)
}

func draw(t *testing.T, r *rand.ChaCha8, scale *big.Rat, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		y, err := Laplace(r, scale)
		require.NoError(t, err)
		require.True(t, y.IsInt64())
		out[i] = y.Int64()
	}
	return out
}

// The sampler matches the exact pmf at scales from 0.1 (ε = 10, Δ = 1) to
// 2^40/0.01 ≈ 10^14 (ε = 0.01, Δ = 2^40), and the same test rejects a
// sampler whose scale is 10% off at every scale where 10% is visible.
func TestLaplaceMatchesPMF(t *testing.T) {
	const n = 20000
	seed := byte(0)
	for _, eps := range []float64{0.01, 0.1, 0.5, 1, 10} {
		for _, d := range []int64{1, 1000, 1 << 40} {
			seed++
			scale, err := Scale(big.NewInt(d), epsilon(eps))
			require.NoError(t, err)
			c, _ := scale.Float64()
			stat, df := chiSquare(draw(t, seeded(seed), scale, n), c)
			if df == 0 {
				// Scale 0.1: all but ~10⁻⁴ of the mass is at 0.
				require.Less(t, c, 0.2)
				continue
			}
			t.Logf("ε=%g Δ=%d χ²=%.1f df=%d crit=%.1f", eps, d, stat, df, critical(df))
			require.Less(t, stat, critical(df), "ε=%g Δ=%d scale %g: χ²=%.1f df=%d", eps, d, c, stat, df)

			if c < 1 {
				continue // a 10% change of a sub-unit scale moves almost no mass
			}
			wrong := new(big.Rat).Mul(scale, big.NewRat(11, 10))
			stat, df = chiSquare(draw(t, seeded(seed+100), wrong, n), c)
			t.Logf("  wrong: χ²=%.1f", stat)
			require.Greater(t, stat, critical(df), "a sampler with scale %g instead of %g must fail", 1.1*c, c)
		}
	}
}

// Attack 2 at the sampler: at sum sensitivities of 10^8, 10^9 and 10^12 fen
// the noise is never zero and its variance is 2α/(1−α)² ≈ 2·scale².
func TestLaplaceLargeScales(t *testing.T) {
	const n = 20000
	for i, bound := range []int64{1e8, 1e9, 1e12} {
		scale, err := Scale(big.NewInt(bound), epsilon(0.25))
		require.NoError(t, err)
		c, _ := scale.Float64()
		zeros := 0
		var sq float64
		for _, y := range draw(t, seeded(byte(50+i)), scale, n) {
			if y == 0 {
				zeros++
			}
			f := float64(y)
			sq += f * f
		}
		require.Zero(t, zeros, "bound %d: a zero draw at scale %g", bound, c)
		want := 2 * c * c // 2α/(1−α)² to within 1/scale²
		// The variance of a Laplace sample variance is 5·σ⁴/n: 6 σ is 9.5%.
		require.InEpsilon(t, want, sq/n, 0.095, "bound %d", bound)
	}
}

// A Σx² sensitivity beyond int64 (V² = 2^100) samples without overflow.
func TestLaplaceBeyondInt64(t *testing.T) {
	d := new(big.Int).Lsh(big.NewInt(1), 100)
	scale, err := Scale(d, epsilon(0.5))
	require.NoError(t, err)
	r := seeded(9)
	big63 := new(big.Int).Lsh(big.NewInt(1), 63)
	beyond := 0
	for range 200 {
		y, err := Laplace(r, scale)
		require.NoError(t, err)
		if new(big.Int).Abs(y).Cmp(big63) > 0 {
			beyond++
		}
	}
	require.Greater(t, beyond, 190, "draws of scale 2^101 are almost all beyond int64")
}

// BernoulliExp(γ) is true with probability exp(−γ), including γ > 1.
func TestBernoulliExp(t *testing.T) {
	const n = 100000
	r := seeded(77)
	for _, g := range []*big.Rat{big.NewRat(0, 1), big.NewRat(1, 2), big.NewRat(1, 1), big.NewRat(7, 3), big.NewRat(5, 2)} {
		hits := 0
		for range n {
			ok, err := BernoulliExp(r, g)
			require.NoError(t, err)
			if ok {
				hits++
			}
		}
		gf, _ := g.Float64()
		p := math.Exp(-gf)
		sd := math.Sqrt(p * (1 - p) / n)
		require.InDelta(t, p, float64(hits)/n, 5*sd+1e-12, "γ=%s", g.RatString())
	}
	_, err := BernoulliExp(r, big.NewRat(-1, 2))
	require.Error(t, err)
}

type failing struct{ after int }

func (f *failing) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("entropy source failed")
	}
	f.after--
	for i := range p {
		p[i] = 0x5a
	}
	return len(p), nil
}

// A failing randomness source is an error, never a silent zero.
func TestReaderFailure(t *testing.T) {
	for after := range 6 {
		_, err := Laplace(&failing{after: after}, big.NewRat(1000, 1))
		require.Error(t, err, fmt.Sprint(after))
	}
	_, err := Laplace(seeded(1), big.NewRat(0, 1))
	require.ErrorIs(t, err, ErrScale)
	_, err = Laplace(seeded(1), big.NewRat(-3, 1))
	require.ErrorIs(t, err, ErrScale)
	_, err = Scale(big.NewInt(0), epsilon(1))
	require.ErrorIs(t, err, ErrScale)
}

// BenchmarkLaplace draws with crypto/rand at a count's and a large sum's
// scale; "read32" (32 bytes from crypto/rand) is the baseline to divide by.
func BenchmarkLaplace(b *testing.B) {
	for _, c := range []struct {
		name  string
		scale *big.Rat
	}{{"count-eps0.5", big.NewRat(2, 1)}, {"sum-1e12-eps0.25", big.NewRat(4e12, 1)}, {"sumsq-2^100", new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 100))}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if _, err := Laplace(crand.Reader, c.scale); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("read32", func(b *testing.B) {
		var buf [32]byte
		for range b.N {
			_, _ = crand.Read(buf[:])
		}
	})
}
