package worker

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
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

// The sensitivity of Σx comes from every dataset whose values the job
// sums, whether the spec names one value column or each input its own.
func TestPlanDPValueBound(t *testing.T) {
	cat := policy.Catalog{
		"a.x": {Name: "a.x", DP: &policy.DP{Epsilon: 1, Budget: 5, ValueBound: 300}},
		"b.y": {Name: "b.y", DP: &policy.DP{Epsilon: 0.5, Budget: 5, ValueBound: 900}},
	}
	job := func(s policy.Spec) *jobs.Job {
		return &jobs.Job{Spec: s, Decision: &policy.Decision{Epsilon: map[string]float64{"a.x": 1, "b.y": 0.5}}}
	}
	per := policy.Spec{Type: policy.Aggregate, Stats: []string{"sum"}, Inputs: []policy.Input{{Dataset: "a.x", Value: "v"}, {Dataset: "b.y", Value: "w"}}}
	require.Equal(t, int64(900), planDP(job(per), cat).sumBound)
	one := policy.Spec{Type: policy.Aggregate, Stats: []string{"sum"}, Value: &policy.ColumnRef{Column: "v"}, Inputs: []policy.Input{{Dataset: "a.x"}, {Dataset: "b.y"}}}
	require.Equal(t, int64(900), planDP(job(one), cat).sumBound)
	is := policy.Spec{Type: policy.IntersectionStats, Stats: []string{"sum"}, Value: &policy.ColumnRef{Dataset: "a.x", Column: "v"}, Inputs: []policy.Input{{Dataset: "a.x", Key: "k"}, {Dataset: "b.y", Key: "k"}}}
	p := planDP(job(is), cat)
	require.Equal(t, int64(300), p.sumBound, "only the value dataset's bound")
	require.Equal(t, 0.5, p.epsilon)
}
