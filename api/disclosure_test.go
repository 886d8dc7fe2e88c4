package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/policy"
)

// dpFixture declares dp on the benefits dataset (with the given value
// bound) and on the owners dataset (ε 1.0), and gives the owners dataset a
// value column, so that a horizontal aggregate over both is possible.
func dpFixture(t *testing.T, benefitsBound int64) *fixture {
	return newFixture(t, nil, func(c *Config) {
		cat := testCatalog()
		b, o := *cat[dsBenefits], *cat[dsOwners]
		b.DP = &policy.DP{Epsilon: 0.4, Budget: 1.0, ValueBound: benefitsBound}
		o.DP = &policy.DP{Epsilon: 1.0, Budget: 1.0}
		o.Columns = append(append([]policy.Column{}, o.Columns...), policy.Column{Name: "monthly_benefit_fen", Kind: policy.KindInt, Uses: []policy.Use{policy.UseValue}})
		cat[dsBenefits], cat[dsOwners] = &b, &o
		c.Catalog = cat
	})
}

const specHorizontalSum = `{"type":"aggregate","purpose":"total benefits","inputs":[` +
	`{"dataset":"hrss.unemployment_benefits"},{"dataset":"housing.property_owners"}],` +
	`"value":{"column":"monthly_benefit_fen"},"stats":["count","sum"]}`

// Attack 1 at submission: a DP horizontal aggregate summing an input that
// declares no dp.value_bound is refused, naming that input — the old rule
// looked the bound up by the empty value dataset and let every such job
// through, its sums released exact.
func TestAttack1MissingValueBoundRefused(t *testing.T) {
	f := dpFixture(t, 300000)
	before := f.snapshot()
	rec := f.do("POST", "/v1/jobs", bearer(alice), specHorizontalSum)
	requireStatus(t, rec, http.StatusForbidden)
	e := errBody(t, rec)
	require.Equal(t, "policy_violation", e.Code)
	require.Len(t, e.Violations, 1)
	require.Equal(t, "dp_value_bound", e.Violations[0].Rule)
	require.Equal(t, dsOwners, e.Violations[0].Dataset, "the input without a bound, not the empty name")
	require.Equal(t, before, f.snapshot(), "a refused job changes nothing")

	// Counting needs no bound.
	count := `{"type":"aggregate","purpose":"how many","inputs":[{"dataset":"hrss.unemployment_benefits"},{"dataset":"housing.property_owners"}],"stats":["count"]}`
	requireStatus(t, f.do("POST", "/v1/jobs", bearer(alice), count), http.StatusAccepted)
}

// The ε charged is the plan's: the job spends the smallest ε of its DP
// datasets (0.4), and that is what every DP dataset's budget is charged —
// not each dataset's own ε (owners' 1.0 would have exhausted its budget of
// 1.0 at once).
func TestBudgetChargedByPlan(t *testing.T) {
	f := dpFixture(t, 300000)
	for range 2 {
		id := f.submit(alice, specPSI)
		require.Equal(t, map[string]float64{dsBenefits: 0.4, dsOwners: 0.4}, f.job(id).Decision.Epsilon)
	}
	rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI)
	requireStatus(t, rec, http.StatusTooManyRequests)
	e := errBody(t, rec)
	require.Equal(t, "dp_budget", e.Violations[0].Rule)
	require.Contains(t, e.Message, "needs ε = 0.4")
}

// Attack 5 at the coordinator: the same analyst asking the 82/81 pair —
// the second filter with one term added — is flagged for the reviewer
// with the earlier job's id. Another analyst's job, and the same spec
// again, are not flagged.
func TestNearDuplicateFlagged(t *testing.T) {
	f := newFixture(t, nil, nil)
	first := `{"type":"psi_cardinality","purpose":"audit","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"id_number","filter":"district = '天河区' AND monthly_benefit_fen > 150000"},` +
		`{"dataset":"housing.property_owners","key":"id_number"}]}`
	second := `{"type":"psi_cardinality","purpose":"audit","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"id_number","filter":"district = '天河区' AND monthly_benefit_fen > 150000 AND monthly_benefit_fen != 168900"},` +
		`{"dataset":"housing.property_owners","key":"id_number"}]}`
	j1 := f.submit(alice, first)
	require.Empty(t, f.job(j1).Decision.Similar)
	other := f.submit(carol, second)
	require.Empty(t, f.job(other).Decision.Similar, "another analyst's jobs are compared by the nodes, not here")
	j2 := f.submit(alice, second)
	sim := f.job(j2).Decision.Similar
	require.Len(t, sim, 1)
	require.Equal(t, j1, sim[0].Job)
	require.Contains(t, sim[0].Why, "monthly_benefit_fen != 168900")

	// The reviewer's view of the job carries it.
	rec := f.do("GET", "/v1/jobs/"+j2, bearer(rita), "")
	requireStatus(t, rec, http.StatusOK)
	require.Equal(t, j1, decodeJSON[wire.Job](t, rec).Decision.Similar[0].Job)

	// The same question again is not a difference.
	j3 := f.submit(alice, first)
	for _, s := range f.job(j3).Decision.Similar {
		require.NotEqual(t, j1, s.Job)
	}
}
