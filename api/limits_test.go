package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/policy"
)

func limitsFixture(t *testing.T, dp *policy.DP, rl *policy.RateLimit) (*fixture, *movableClock) {
	clock := &movableClock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	f := newFixture(t, nil, func(c *Config) {
		cat := testCatalog()
		d := *cat[dsOwners]
		d.DP, d.RateLimit = dp, rl
		cat[dsOwners] = &d
		c.Catalog = cat
		c.Clock = clock
	})
	return f, clock
}

func TestPrivacyBudget(t *testing.T) {
	f, _ := limitsFixture(t, &policy.DP{Epsilon: 0.4, Budget: 1.0}, nil)
	// ε = 0.4 per job against a budget of 1.0: two jobs, not three.
	for i := 0; i < 2; i++ {
		rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI)
		requireStatus(t, rec, http.StatusAccepted)
		id := decodeJSON[wire.Submitted](t, rec).ID
		require.Equal(t, 0.4, f.job(id).Decision.Epsilon[dsOwners])
	}
	before := f.snapshot()
	rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI)
	requireStatus(t, rec, http.StatusTooManyRequests)
	e := errBody(t, rec)
	require.Equal(t, "limit_exceeded", e.Code)
	require.Equal(t, "dp_budget", e.Violations[0].Rule)
	require.Equal(t, dsOwners, e.Violations[0].Dataset)
	require.Contains(t, e.Message, "0.2 of your budget")
	require.Equal(t, before, f.snapshot(), "a refused job changes nothing")

	// Budgets are per analyst.
	requireStatus(t, f.do("POST", "/v1/jobs", bearer(carol), specPSI), http.StatusAccepted)

	// A resubmission with the same Idempotency-Key is not charged twice.
	g, _ := limitsFixture(t, &policy.DP{Epsilon: 0.5, Budget: 1.0}, nil)
	for i := 0; i < 3; i++ {
		rec := g.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", "once")
		require.Contains(t, []int{200, 202}, rec.Code, rec.Body.String())
	}
	requireStatus(t, g.do("POST", "/v1/jobs", bearer(alice), specPSI), http.StatusAccepted)
}

func TestPrivacyRules(t *testing.T) {
	f, _ := limitsFixture(t, &policy.DP{Epsilon: 0.5, Budget: 5}, nil)
	// A member list cannot be made differentially private.
	rec := f.do("POST", "/v1/jobs", bearer(carol), specMembers)
	requireStatus(t, rec, http.StatusForbidden)
	require.Equal(t, "dp", errBody(t, rec).Violations[0].Rule)
}

func TestRateLimit(t *testing.T) {
	f, clock := limitsFixture(t, nil, &policy.RateLimit{Jobs: 2, Per: time.Hour})
	requireStatus(t, f.do("POST", "/v1/jobs", bearer(alice), specPSI), http.StatusAccepted)
	requireStatus(t, f.do("POST", "/v1/jobs", bearer(alice), specPSIFiltered), http.StatusAccepted)
	rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI)
	requireStatus(t, rec, http.StatusTooManyRequests)
	require.Equal(t, "rate_limit", errBody(t, rec).Violations[0].Rule)
	// Another analyst has their own allowance; the next window opens again.
	requireStatus(t, f.do("POST", "/v1/jobs", bearer(carol), specPSI), http.StatusAccepted)
	clock.Advance(time.Hour)
	requireStatus(t, f.do("POST", "/v1/jobs", bearer(alice), specPSI), http.StatusAccepted)
}
