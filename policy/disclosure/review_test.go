package disclosure

import (
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure/iblt"
)

func newTestHasher(t testing.TB) *iblt.Hasher {
	h, err := iblt.NewHasher([]byte("INSECURE test secret, 32+ bytes long"))
	require.NoError(t, err)
	return h
}

// seeded is a deterministic randomness source for tests only (INSECURE).
func seeded(i byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{i, 0xd1}) }

func checkNamed(t testing.TB, cs []Check, name string) Check {
	for _, c := range cs {
		if c.Name == name {
			require.NotEmpty(t, c.Protects, "check %s explains what it protects", name)
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, cs)
	return Check{}
}

func decodeStats(t testing.TB, raw []byte) StatsResult {
	var res StatsResult
	require.NoError(t, json.Unmarshal(raw, &res))
	return res
}

// ---- ported from jobs/runner/stats_test.go --------------------------------

func TestExactMoments(t *testing.T) {
	// 1, 2, 4: mean 7/3, variance (1+4+16)/3 − 49/9 = 63/9 − 49/9 = 14/9.
	require.Equal(t, "7/3", ExactMean(3, 7).RatString())
	require.Equal(t, "14/9", ExactVariance(3, 7, 21).RatString())
	require.Equal(t, "0", ExactVariance(2, 10, 50).RatString())
}

func bi(x int64) *big.Int { return big.NewInt(x) }

func TestStatsReviewSuppression(t *testing.T) {
	sq := bi
	spec := &policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "hrss.benefits"}},
		Value: &policy.ColumnRef{Column: "monthly_benefit_fen"}, GroupBy: &policy.ColumnRef{Column: "district"},
		Stats: []string{"count", "sum", "mean", "variance"}}
	plan := mustPlan(t, spec, testCatalog(nil, 10), nil)
	groups := map[string]Moments{
		"天河区": {Count: 12, Sum: bi(120), SumSq: sq(1300)},
		"越秀区": {Count: 3, Sum: bi(30), SumSq: sq(300)},
		"海珠区": {Count: 0, SumSq: sq(0)},
	}
	rv, err := ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 15, Sum: bi(150), SumSq: sq(1600)}, Groups: groups}, nil)
	require.NoError(t, err)
	// 越秀区 is below k; 天河区 is hidden too, or total − 天河区 would give it.
	require.Equal(t, []string{"groups.天河区", "groups.越秀区"}, rv.Suppressed)
	require.False(t, checkNamed(t, rv.Checks, NameMinCount).Passed)
	require.Equal(t, NameMinCount, rv.Checks[0].Name)
	res := decodeStats(t, rv.Result)
	require.EqualValues(t, 15, *res.Count)
	require.Equal(t, "10", res.MeanExact)
	require.Equal(t, "20/3", res.VarianceExact) // 1600/15 − 100
	require.Nil(t, res.Groups["越秀区"].Count, "a small group is suppressed, not rounded")
	require.NotEmpty(t, res.Groups["越秀区"].Suppressed)
	require.NotContains(t, res.Groups, "海珠区")
	require.Nil(t, res.Groups["天河区"].Count)
	require.Contains(t, res.Groups["天河区"].Suppressed, "derived from the total")
	require.Equal(t, res.Groups["天河区"].Suppressed, res.Groups["越秀区"].Suppressed,
		"one note for both: telling them apart would say which side of k each is on")

	// Everything below k: nothing but the suppression note.
	rv, err = ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 5, Sum: bi(50), SumSq: sq(500)}}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"all"}, rv.Suppressed)
	require.NotContains(t, string(rv.Result), "50")
}

// The single-table cases of the old hiddenBuckets test.
func TestHiddenBuckets(t *testing.T) {
	hidden := func(hist ...int64) []bool {
		tb := newTable(0, len(hist))
		var n int64
		for b, c := range hist {
			tb.val[b] = c
			n += c
		}
		tb.val[len(hist)] = n
		require.False(t, tb.suppress(10))
		return tb.hide[:len(hist)]
	}
	require.Equal(t, []bool{false, false, false}, hidden(0, 12, 30), "empty buckets say nothing")
	require.Equal(t, []bool{true, true, false}, hidden(3, 12, 30), "one small bucket takes the next smallest with it")
	require.Equal(t, []bool{true, false, true, false}, hidden(3, 40, 5, 30))
}

// ---- attack 1: horizontal aggregates got no noise on sums ------------------

func horizontal(stats ...string) *policy.Spec {
	return &policy.Spec{Type: policy.Aggregate, Purpose: "test",
		Inputs: []policy.Input{{Dataset: "hrss.benefits"}, {Dataset: "civil.subsidies"}},
		Value:  &policy.ColumnRef{Column: "amount_fen"}, Stats: stats}
}

func TestAttack1HorizontalSumsAreNoised(t *testing.T) {
	spec := horizontal("count", "sum")
	cat := testCatalog(&policy.DP{Epsilon: 1, Budget: 10, ValueBound: 200000}, 10)
	cat["civil.subsidies"].DP = &policy.DP{Epsilon: 0.5, Budget: 10, ValueBound: 500000}
	plan := mustPlan(t, spec, cat, map[string]int{"hrss.benefits": 2})
	// The bound is looked up per input: Δ = 2·200000 + 1·500000.
	require.Equal(t, big.NewInt(900000), plan.DP.Sums.Sensitivity)
	require.Equal(t, []InputLimits{{"hrss.benefits", 200000, 2}, {"civil.subsidies", 500000, 1}}, plan.Inputs)
	require.Equal(t, big.NewRat(1, 2), plan.DP.Epsilon, "the strictest owner's ε")

	// The attack: read the exact sum off the release. It is never there.
	const exact = 123456789
	r := seeded(1)
	var sq float64
	const n = 2000
	for range n {
		rv, err := ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 500, Sum: bi(exact)}}, r)
		require.NoError(t, err)
		res := decodeStats(t, rv.Result)
		require.NotEqual(t, int64(exact), res.Sum.Int64())
		d := float64(res.Sum.Int64() - exact)
		sq += d * d
	}
	scale, _ := plan.DP.Sums.Scale.Float64() // 900000 / (0.5/2)
	require.Equal(t, 3.6e6, scale)
	require.InEpsilon(t, 2*scale*scale, sq/n, 0.25)

	// An input without a bound makes the job unprotectable: refused.
	cat["civil.subsidies"].DP = nil
	vs := CheckDP(spec, cat)
	require.Len(t, vs, 1)
	require.Equal(t, "dp_value_bound", vs[0].Rule)
	require.Equal(t, "civil.subsidies", vs[0].Dataset)
	require.Empty(t, CheckDP(horizontal("count"), cat), "a count needs no bound")
}

// ---- attack 2: the float sampler lost its noise at realistic bounds -------

func TestAttack2NoiseAtRealisticBounds(t *testing.T) {
	spec := &policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "hrss.benefits"}},
		Value: &policy.ColumnRef{Dataset: "hrss.benefits", Column: "amount_fen"}, Stats: []string{"count", "sum"}}
	for i, bound := range []int64{1e8, 1e9, 1e12} {
		plan := mustPlan(t, spec, testCatalog(&policy.DP{Epsilon: 0.5, Budget: 10, ValueBound: bound}, 10), nil)
		scale, _ := plan.DP.Sums.Scale.Float64()
		require.Equal(t, float64(bound)*4, scale, "Δ = bound, ε share 0.25")
		const n = 3000
		r := seeded(byte(10 + i))
		zeros := 0
		var sq float64
		for range n {
			rv, err := ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 1000, Sum: bi(5e8)}}, r)
			require.NoError(t, err)
			d := float64(decodeStats(t, rv.Result).Sum.Int64() - 5e8)
			if d == 0 {
				zeros++
			}
			sq += d * d
		}
		require.Zero(t, zeros, "bound %d: some draws had no noise", bound)
		// Sample variance of Laplace noise: relative sd √(5/n) = 4%; 5 sd.
		require.InEpsilon(t, 2*scale*scale, sq/n, 0.2, "bound %d", bound)
	}
}

// Σx² with a bound of 10^12 has Δ = 10^24, far beyond int64: the variance
// is still released, noised.
func TestVarianceBeyondInt64(t *testing.T) {
	spec := &policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "hrss.benefits"}},
		Value: &policy.ColumnRef{Column: "amount_fen"}, Stats: []string{"count", "mean", "variance"}}
	plan := mustPlan(t, spec, testCatalog(&policy.DP{Epsilon: 1, Budget: 10, ValueBound: 1e12}, 10), nil)
	require.Equal(t, "1000000000000000000000000", plan.DP.Squares.Sensitivity.String())
	sq := int64(4e18)
	rv, err := ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 1000, Sum: bi(2e12), SumSq: bi(sq)}}, seeded(3))
	require.NoError(t, err)
	res := decodeStats(t, rv.Result)
	require.NotNil(t, res.Variance)
	require.NotEqual(t, "0", res.VarianceExact)
}

// ---- attack 3: value_bound was never enforced -----------------------------

func TestAttack3ClampAtNode(t *testing.T) {
	require.Equal(t, int64(100), Clamp(1e15, 100))
	require.Equal(t, int64(-100), Clamp(math.MinInt64, 100))
	require.Equal(t, int64(100), Clamp(math.MaxInt64, 100))
	require.Equal(t, int64(7), Clamp(7, 100))
	require.Equal(t, int64(0), Clamp(7, 0), "no bound: contributes nothing")

	// One outlier cannot move the sum by more than the bound the noise is
	// sized for.
	xs := []int64{5, 90, -3, 1e15, -1e15}
	n, err := ClampAll(xs, 100)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []int64{5, 90, -3, 100, -100}, xs)
	_, err = ClampAll(xs, 0)
	require.Error(t, err)

	ds := &policy.Dataset{Name: "hrss.benefits", DP: &policy.DP{Epsilon: 1, Budget: 2, ValueBound: 300000}}
	require.Equal(t, Limits{ValueBound: 300000, MaxRowsPerKey: 1}, LimitsFor(ds))
	require.Equal(t, Limits{MaxRowsPerKey: 4}, LimitsFor(&policy.Dataset{Name: "x.y", MaxRowsPerKey: 4}))
}

// ---- attack 4: ε spent twice with group_by; counts over rows --------------

func TestAttack4EpsilonAndPeople(t *testing.T) {
	spec := &policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "hrss.benefits"}},
		Value: &policy.ColumnRef{Column: "amount_fen"}, GroupBy: &policy.ColumnRef{Column: "district"},
		Stats: []string{"count", "sum"}}
	cat := testCatalog(&policy.DP{Epsilon: 0.8, Budget: 4, ValueBound: 1000}, 10)
	plan := mustPlan(t, spec, cat, map[string]int{"hrss.benefits": 3})

	// ε is spent once, on the job: two quantities share it, the groups
	// share each quantity, and the total is derived, not charged.
	require.Equal(t, map[string]int64{"hrss.benefits": 800000}, plan.DP.Charges)
	require.Len(t, plan.DP.Quantities(), 2)
	require.Equal(t, big.NewRat(2, 5), plan.DP.Counts.Epsilon)
	// A person has up to 3 rows: counts move by 3, sums by 3·1000.
	require.Equal(t, big.NewInt(3), plan.DP.Counts.Sensitivity)
	require.Equal(t, big.NewInt(3000), plan.DP.Sums.Sensitivity)
	require.Equal(t, big.NewRat(15, 2), plan.DP.Counts.Scale)
	// And k counts people: 10 people need at least 28 rows.
	require.EqualValues(t, 28, plan.MinRows)

	groups := map[string]Moments{"a": {Count: 400, Sum: bi(90000)}, "b": {Count: 300, Sum: bi(70000)}, "c": {Count: 200, Sum: bi(1000)}}
	r := seeded(4)
	for range 200 {
		rv, err := ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 900, Sum: bi(161000)}, Groups: groups}, r)
		require.NoError(t, err)
		res := decodeStats(t, rv.Result)
		var n, s int64
		for _, g := range res.Groups {
			n += *g.Count
			s += g.Sum.Int64()
		}
		require.Equal(t, *res.Count, n, "the total is the sum of the noised groups")
		require.Equal(t, res.Sum.Int64(), s)
		require.Contains(t, checkNamed(t, rv.Checks, NameDP).Detail, "totals derived")
	}

	// A group of 25 rows is 25 people only if each has one row: with up to
	// 3 rows each it could be 9, below k; it is suppressed.
	plan = mustPlan(t, spec, testCatalog(nil, 10), map[string]int{"hrss.benefits": 3})
	rv, err := ReviewStats(spec, plan, StatsInput{Total: Moments{Count: 425, Sum: bi(9)}, Groups: map[string]Moments{"a": {Count: 400, Sum: bi(8)}, "b": {Count: 25, Sum: bi(1)}}}, nil)
	require.NoError(t, err)
	require.Contains(t, rv.Suppressed, "groups.b")

	// The person cap is enforced at the node: the first 3 rows per key.
	require.Equal(t, []int{0, 1, 2, 4, 6}, CapPerKey([]string{"p", "p", "p", "p", "q", "p", "r"}, 3))
	require.Equal(t, []int{0, 1}, CapPerKey([]string{"p", "q", "p"}, 0), "0 means one row per person")
}

// The noise of a quantity is sized for a person's effect on all its cells
// at once: for a DLap of scale Δ/ε, moving one cell by Δ changes any
// outcome's probability by exactly e^ε. Checked on the exact pmf.
func TestLaplaceRatioIsEpsilon(t *testing.T) {
	spec := &policy.Spec{Type: policy.PSICardinality, Purpose: "test",
		Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id"}, {Dataset: "housing.owners", Key: "id"}}}
	plan := mustPlan(t, spec, testCatalog(&policy.DP{Epsilon: 0.5, Budget: 1}, 10), nil)
	require.Equal(t, big.NewInt(1), plan.DP.Counts.Sensitivity, "keys are distinct: one person, one key")
	scale, _ := plan.DP.Counts.Scale.Float64()
	pmf := func(y float64) float64 { return math.Exp(-math.Abs(y) / scale) }
	for _, y := range []float64{0, 3, 10, 40} {
		require.InDelta(t, math.Exp(0.5), pmf(y)/pmf(y+1), 1e-9)
	}
}

// ---- attack 5: differencing across jobs -----------------------------------

type person struct {
	id      string
	benefit int64
}

func TestAttack5Differencing(t *testing.T) {
	first := policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{
		{Dataset: "hrss.benefits", Key: "id_number", Filter: "district = '天河区'"},
		{Dataset: "housing.owners", Key: "id_number"}}}
	second := first
	second.Inputs = []policy.Input{
		{Dataset: "hrss.benefits", Key: "id_number", Filter: "district = '天河区' AND monthly_benefit_fen != 168900"},
		{Dataset: "housing.owners", Key: "id_number"}}

	// The coordinator's flag, from the specs alone.
	near, why := NearDuplicate(first, second)
	require.True(t, near, why)
	require.Contains(t, why, "added AND term: monthly_benefit_fen != 168900")

	// The node's sketches of the two filtered inputs: 82 people, then 81.
	people := make([]person, 82)
	for i := range people {
		people[i] = person{id: "4401061990010" + string(rune('A'+i%26)) + string(rune('a'+i/26)), benefit: 150000 + int64(i)}
	}
	people[17].benefit = 168900 // the target
	hash := newTestHasher(t)
	sketch := func(keep func(person) bool) *iblt.Sketch {
		s := iblt.New()
		for _, p := range people {
			if keep(p) {
				s.Insert(hash.Sum64([]byte(p.id)))
			}
		}
		return s
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	h := &History{Now: func() time.Time { return now }}
	require.NoError(t, h.Add("hrss.benefits", "job-1", sketch(func(person) bool { return true })))
	overlaps := h.Compare("hrss.benefits", sketch(func(p person) bool { return p.benefit != 168900 }), 10)
	require.Equal(t, []Overlap{{Job: "job-1", Dataset: "hrss.benefits", Difference: 1}}, overlaps)

	// The second release is withheld: 82 − ? gives nothing.
	plan := mustPlan(t, &second, testCatalog(nil, 10), nil)
	rv, err := ReviewCardinality(plan, 81, nil, overlaps, nil)
	require.NoError(t, err)
	require.NotContains(t, string(rv.Result), "81")
	require.Contains(t, string(rv.Result), `"count":null`)
	require.False(t, checkNamed(t, rv.Checks, NameDifferencing).Passed)

	// The same for a stats job.
	spec := histSpec(nil, false)
	rs, err := ReviewStats(spec, mustPlan(t, spec, testCatalog(nil, 10), nil), StatsInput{Total: Moments{Count: 81}, Overlaps: overlaps}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"all"}, rs.Suppressed)
	require.NotContains(t, string(rs.Result), "81")

	// With DP the noise bounds what the difference reveals: released, flagged.
	dpPlan := mustPlan(t, &second, testCatalog(&policy.DP{Epsilon: 1, Budget: 5}, 10), nil)
	rv, err = ReviewCardinality(dpPlan, 81, nil, overlaps, seeded(5))
	require.NoError(t, err)
	require.NotContains(t, string(rv.Result), "null")
	require.False(t, checkNamed(t, rv.Checks, NameDifferencing).Passed)

	// A spec-only match is flagged, not withheld.
	rv, err = ReviewCardinality(plan, 81, nil, []Overlap{{Job: "job-1", Why: why}}, nil)
	require.NoError(t, err)
	require.Contains(t, string(rv.Result), `"count":81`)
	require.False(t, checkNamed(t, rv.Checks, NameDifferencing).Passed)
}

// ---- attack 7: psi_members skipped k --------------------------------------

func TestAttack7MembersK(t *testing.T) {
	spec := &policy.Spec{Type: policy.PSIMembers, Purpose: "test", Inputs: []policy.Input{
		{Dataset: "hrss.benefits", Key: "id"}, {Dataset: "housing.owners", Key: "id"}}}
	plan := mustPlan(t, spec, testCatalog(nil, 10), nil)

	v := ReviewMembers(plan, 3, nil, nil)
	require.False(t, v.Release, "three members are three people singled out")
	require.False(t, checkNamed(t, v.Checks, NameMembersK).Passed)
	require.NotContains(t, string(v.Withheld), "3")
	require.Equal(t, []string{"members"}, v.Suppressed)

	v = ReviewMembers(plan, 40, []string{"housing.owners"}, nil)
	require.False(t, v.Release, "a filter that isolates people blocks the list")
	require.False(t, checkNamed(t, v.Checks, NameIsolation).Passed)

	v = ReviewMembers(plan, 40, nil, []Overlap{{Job: "j", Dataset: "hrss.benefits", Difference: 2}})
	require.False(t, v.Release, "a list 2 people off an earlier one names them")

	v = ReviewMembers(plan, 40, nil, nil)
	require.True(t, v.Release)
	require.Nil(t, v.Withheld)
	for _, c := range v.Checks {
		require.True(t, c.Passed, c.Name)
	}
}

// ---- plan and checks ------------------------------------------------------

func TestPlanViolations(t *testing.T) {
	dp := testCatalog(&policy.DP{Epsilon: 1, Budget: 5}, 10)
	members := &policy.Spec{Type: policy.PSIMembers, Purpose: "t", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id"}, {Dataset: "housing.owners", Key: "id"}}}
	vs := CheckDP(members, dp)
	require.NotEmpty(t, vs)
	require.Equal(t, "dp", vs[0].Rule)

	tiny := testCatalog(&policy.DP{Epsilon: 1e-9, Budget: 5}, 10)
	vs = CheckDP(horizontal("count"), tiny)
	require.Equal(t, "dp_epsilon", vs[0].Rule)

	partial := testCatalog(&policy.DP{Epsilon: 1, Budget: 5, ValueBound: 10}, 10)
	delete(partial, "civil.subsidies")
	vs = CheckDP(horizontal("count"), partial)
	require.Equal(t, "dp_unknown_dataset", vs[0].Rule)

	_, vs = NewPlan(horizontal("count"), withRows(testCatalog(nil, 10), map[string]int{"hrss.benefits": -1}))
	require.Equal(t, "max_rows_per_key", vs[0].Rule)

	_, vs = NewPlan(&policy.Spec{Type: "nope"}, dp)
	require.Equal(t, "spec", vs[0].Rule)

	// Without DP: k is the strictest, M is the sum over the inputs.
	cat := testCatalog(nil, 10)
	cat["civil.subsidies"].MinCount = 25
	p := mustPlan(t, horizontal("count"), cat, map[string]int{"civil.subsidies": 2})
	require.Nil(t, p.DP)
	require.Equal(t, 25, p.K)
	require.EqualValues(t, 3, p.RowsPerPerson)
	require.EqualValues(t, 73, p.MinRows)

	require.True(t, WithinBudget(4_500_000, 500_000, 5))
	require.False(t, WithinBudget(4_500_001, 500_000, 5))
}

func TestReviewStatsRejectsBadInput(t *testing.T) {
	spec := histSpec([]int64{10}, true)
	plan := mustPlan(t, spec, testCatalog(nil, 10), nil)
	for name, in := range map[string]StatsInput{
		"groups do not add up":  {Total: Moments{Count: 30, Hist: []int64{10, 20}}, Groups: map[string]Moments{"a": {Count: 29, Hist: []int64{10, 19}}}},
		"buckets do not add up": {Total: Moments{Count: 30, Hist: []int64{10, 19}}},
		"wrong bucket count":    {Total: Moments{Count: 30, Hist: []int64{30}}},
		"negative count":        {Total: Moments{Count: -1, Hist: []int64{-1, 0}}},
	} {
		_, err := ReviewStats(spec, plan, in, nil)
		require.Error(t, err, name)
	}
	v := &policy.Spec{Type: policy.Aggregate, Purpose: "t", Inputs: []policy.Input{{Dataset: "hrss.benefits"}}, Value: &policy.ColumnRef{Column: "x"}, Stats: []string{"variance"}}
	_, err := ReviewStats(v, mustPlan(t, v, testCatalog(nil, 10), nil), StatsInput{Total: Moments{Count: 30}}, nil)
	require.ErrorContains(t, err, "Σx²")
	_, err = ReviewCardinality(plan, 5, nil, nil, nil)
	require.Error(t, err, "a stats plan is not a cardinality plan")
}

func TestReviewIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		spec, total, groups, _ := randomTable(r, 10)
		plan := mustPlan(t, spec, testCatalog(nil, 10), nil)
		a, err := ReviewStats(spec, plan, StatsInput{Total: total, Groups: groups}, nil)
		require.NoError(t, err)
		b, err := ReviewStats(spec, plan, StatsInput{Total: total, Groups: groups}, nil)
		require.NoError(t, err)
		require.Equal(t, a, b)
	}
}

func TestCardinality(t *testing.T) {
	spec := &policy.Spec{Type: policy.PSICardinality, Purpose: "t", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id"}, {Dataset: "housing.owners", Key: "id"}}}
	plan := mustPlan(t, spec, testCatalog(nil, 10), nil)
	rv, err := ReviewCardinality(plan, 9, nil, nil, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"count": null, "suppressed": "below k = 10"}`, string(rv.Result))
	require.Equal(t, []string{"count"}, rv.Suppressed)
	rv, err = ReviewCardinality(plan, 82, []string{"hrss.benefits"}, nil, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"count": 82}`, string(rv.Result))
	require.False(t, checkNamed(t, rv.Checks, NameIsolation).Passed)
	for _, c := range rv.Checks {
		require.NotEmpty(t, c.Protects)
	}
}

func TestNearDuplicate(t *testing.T) {
	base := policy.Spec{Type: policy.Aggregate, Purpose: "t", Inputs: []policy.Input{{Dataset: "hrss.benefits", Filter: "district = '天河区' AND age > 30"}},
		Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"sum"}}
	with := func(f string) policy.Spec {
		s := base
		s.Inputs = []policy.Input{{Dataset: "hrss.benefits", Filter: f}}
		return s
	}
	for f, want := range map[string]bool{
		"district = '天河区' AND age > 30": false, // the same question
		"age > 30 AND district = '天河区'": false, // the same, reordered
		"district = '天河区'":              true,  // a conjunct removed
		"":                              true,  // every conjunct removed
		"district = '天河区' AND age > 31": true,  // a literal changed
		"district = '天河区' AND age > 30 AND id != 'x'":   true,  // a conjunct added
		"district = '越秀区' AND age > 30 AND sex = 'f'":   true,  // a literal changed and a conjunct added
		"district = '天河区' AND height > 30":              false, // a different conjunct
		"(district = '天河区' AND age > 30) OR name = 'x'": true,  // a disjunct added
		"age < 30":                   false,
		"district IN ('天河区', '越秀区')": false,
	} {
		near, why := NearDuplicate(base, with(f))
		require.Equal(t, want, near, "%q: %s", f, why)
	}
	other := base
	other.Value = &policy.ColumnRef{Column: "other"}
	near, _ := NearDuplicate(base, other)
	require.False(t, near)
	bins := histSpec([]int64{10, 20}, false)
	bins2 := *bins
	bins2.Bins = []int64{10, 11, 20}
	near, why := NearDuplicate(*bins, bins2)
	require.True(t, near, why)
}

func TestHistoryWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &History{Window: 24 * time.Hour, PerDataset: 2, Now: func() time.Time { return now }}
	a := iblt.New()
	for i := range 100 {
		a.Insert(uint64(i))
	}
	b := iblt.New()
	for i := range 99 {
		b.Insert(uint64(i))
	}
	require.NoError(t, h.Add("d.x", "j1", a))
	require.Len(t, h.Compare("d.x", b, 10), 1)
	require.Empty(t, h.Compare("d.y", b, 10), "per dataset")
	now = now.Add(25 * time.Hour)
	require.Empty(t, h.Compare("d.x", b, 10), "beyond the window")
	require.NoError(t, h.Add("d.x", "j2", a))
	require.NoError(t, h.Add("d.x", "j3", a))
	require.NoError(t, h.Add("d.x", "j4", a))
	got := h.Compare("d.x", b, 10)
	require.Len(t, got, 2, "at most PerDataset kept")
	require.Equal(t, "j3", got[0].Job)
	require.Error(t, h.Add("d.x", "", a))
}

func TestChecksExplainThemselves(t *testing.T) {
	for _, n := range []string{NameMinCount, NameIsolation, NameLinked, NameDP, NameDifferencing, NameMembersK} {
		p := Protects[n]
		require.NotEmpty(t, p, n)
		require.Equal(t, 1, strings.Count(p, ". ")+1, "%s: one sentence", n)
	}
}
