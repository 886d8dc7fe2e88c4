package worker

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// dpPlan is the noise a job's released numbers get: the smallest ε of its
// DP datasets (the strictest owner wins) and the sensitivity of a sum.
type dpPlan struct {
	epsilon  float64
	sumBound int64 // Δ of Σx; 0 when the value dataset declares none
	// queries is how many quantities each row can move (count, Σx, Σx²,
	// histogram): ε is split evenly among them (sequential composition).
	// Groups partition the rows, so they share ε (parallel composition).
	queries int
}

// planDP returns nil when no dataset of the job asks for DP.
func planDP(j *jobs.Job, cat policy.Catalog) *dpPlan {
	if j.Decision == nil || len(j.Decision.Epsilon) == 0 {
		return nil
	}
	p := &dpPlan{epsilon: math.Inf(1)}
	for _, e := range j.Decision.Epsilon {
		p.epsilon = min(p.epsilon, e)
	}
	// Δ of Σx is the largest value bound of any dataset whose values the
	// job sums (each input's own value column, or the spec's).
	for i, in := range j.Spec.Inputs {
		if j.Spec.ValueColumn(i) == "" {
			continue
		}
		if d, ok := cat[in.Dataset]; ok && d.DP != nil {
			p.sumBound = max(p.sumBound, d.DP.ValueBound)
		}
	}
	p.queries = 1 // the count is always released
	if has(j.Spec.Stats, "sum") || has(j.Spec.Stats, "mean") || has(j.Spec.Stats, "variance") {
		p.queries++
	}
	if has(j.Spec.Stats, "variance") {
		p.queries++
	}
	if has(j.Spec.Stats, "histogram") {
		p.queries++
	}
	return p
}

// each is the ε every released quantity gets.
func (p *dpPlan) each() float64 { return p.epsilon / float64(p.queries) }

// geometric samples the two-sided geometric distribution (the discrete
// Laplace mechanism): P(k) ∝ exp(−ε|k|/Δ). It is ε-differentially private
// for an integer query of sensitivity Δ, and keeps results integers.
func geometric(epsilon float64, sensitivity int64) int64 {
	if sensitivity <= 0 {
		return 0
	}
	alpha := math.Exp(-epsilon / float64(sensitivity))
	one := func() int64 {
		// Failures before a success of probability 1−α, by inversion.
		u := uniform()
		return int64(math.Floor(math.Log(u) / math.Log(alpha)))
	}
	return one() - one()
}

// uniform is a uniform float in (0, 1] from crypto/rand: noise an
// observer could predict would be no noise.
func uniform() float64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return (float64(binary.BigEndian.Uint64(b[:])>>11) + 1) / (1 << 53)
}

// apply adds noise to the totals and says what it did, for the reviewer.
func (p *dpPlan) apply(m *moments) {
	m.Count += geometric(p.each(), 1)
	if m.Count < 0 {
		m.Count = 0
	}
	m.Sum = new(big.Int).Add(orZero(m.Sum), big.NewInt(geometric(p.each(), p.sumBound)))
	if m.SumSq != nil {
		m.SumSq = new(big.Int).Add(m.SumSq, big.NewInt(geometric(p.each(), p.sumBound*p.sumBound)))
	}
	if m.Hist != nil {
		h := make([]int64, len(m.Hist))
		for b, n := range m.Hist {
			h[b] = max(0, n+geometric(p.each(), 1))
		}
		m.Hist = h
	}
}

func (p *dpPlan) check(what string) jobs.Check {
	return jobs.Check{Name: "differential_privacy", Passed: true,
		Detail: fmt.Sprintf("discrete Laplace noise added to %s: ε = %g split over %d released quantities (Δcount = 1, Δsum = %d); ε was charged to the analyst's budget at submission", what, p.epsilon, p.queries, p.sumBound)}
}
