package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

func TestSubmitAccepted(t *testing.T) {
	f := newFixture(t, nil, nil)
	rec := f.do("POST", "/v1/jobs", bearer(alice), specPSIFiltered)
	requireStatus(t, rec, http.StatusAccepted)
	s := decodeJSON[wire.Submitted](t, rec)
	require.Equal(t, jobs.Queued, s.State)

	j := f.job(s.ID)
	require.Equal(t, alice, j.Owner)
	require.Equal(t, "hrss", j.Department)
	require.Equal(t, jobs.Queued, j.State)
	require.NotNil(t, j.Decision)
	require.True(t, j.Decision.Allow)
	require.Contains(t, j.Decision.Versions, dsBenefits)
	require.Equal(t, "district = '天河区'", j.Spec.Inputs[0].Filter)

	es := f.entries()
	require.Len(t, es, 1)
	require.Equal(t, "job.submitted", es[0].Action)
	require.Equal(t, s.ID, es[0].Job)
	require.Equal(t, alice, es[0].Actor)

	// The owner sees it, with its policy decision.
	rec = f.do("GET", "/v1/jobs/"+s.ID, bearer(alice), "")
	requireStatus(t, rec, 200)
	wj := decodeJSON[wire.Job](t, rec)
	require.Equal(t, s.ID, wj.ID)
	require.Equal(t, policy.PSICardinality, wj.Type)
	require.NotNil(t, wj.Decision)
}

func TestSubmitInvalidSpec(t *testing.T) {
	for name, body := range map[string]string{
		"empty body":          "",
		"not JSON":            "type=psi_cardinality",
		"JSON null":           "null",
		"array":               "[" + specPSI + "]",
		"unknown field":       strings.Replace(specPSI, `"type"`, `"colour":"red","type"`, 1),
		"unknown input field": strings.Replace(specPSI, `"key":"id_number"}`, `"key":"id_number","where":"1=1"}`, 1),
		"trailing object":     specPSI + "{}",
		"trailing garbage":    specPSI + " x",
		"two specs":           specPSI + specPSI,
		"type is a number":    strings.Replace(specPSI, `"psi_cardinality"`, `5`, 1),
		"inputs is a string":  `{"type":"psi_cardinality","purpose":"p","inputs":"hrss.unemployment_benefits"}`,
		"purpose is a list":   strings.Replace(specPSI, `"eligibility check"`, `["a"]`, 1),
		"truncated":           specPSI[:len(specPSI)-3],
		"unknown job type":    strings.Replace(specPSI, `"psi_cardinality"`, `"everything"`, 1),
		"no purpose":          strings.Replace(specPSI, `"eligibility check"`, `"  "`, 1),
		"one input":           `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number"}]}`,
		"dataset twice":       `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number"},{"dataset":"hrss.unemployment_benefits","key":"id_number"}]}`,
		"stats on psi":        strings.Replace(specPSI, `"purpose"`, `"stats":["count"],"purpose"`, 1),
		// One party per department: hrss holding two inputs would make the
		// last hop of its own second list and of housing's, and so compute
		// their intersection itself.
		"two inputs of one department": `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number"},` +
			`{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"hrss.other_benefits","key":"id_number"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil, nil)
			rec := f.do("POST", "/v1/jobs", bearer(alice), body)
			requireStatus(t, rec, http.StatusBadRequest)
			e := errBody(t, rec)
			require.Equal(t, "invalid_spec", e.Code)
			require.Empty(t, e.Violations)
			f.requireEmpty()
		})
	}
}

func TestSubmitPolicyViolation(t *testing.T) {
	type v struct{ rule, dataset, column string }
	for _, c := range []struct {
		name string
		spec string
		want []v
	}{
		{
			name: "unknown dataset",
			spec: `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number"},{"dataset":"tax.returns","key":"id_number"}]}`,
			want: []v{{"unknown_dataset", "tax.returns", ""}},
		},
		{
			name: "column not allowed as key",
			spec: `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"monthly_benefit_fen"},{"dataset":"housing.property_owners","key":"id_number"}]}`,
			want: []v{{"column_use", dsBenefits, "monthly_benefit_fen"}},
		},
		{
			name: "undeclared key column",
			spec: `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"passport"},{"dataset":"housing.property_owners","key":"id_number"}]}`,
			want: []v{{"unknown_column", dsBenefits, "passport"}},
		},
		{
			name: "filter on an undeclared column",
			spec: `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number","filter":"shoe_size > 40"},{"dataset":"housing.property_owners","key":"id_number"}]}`,
			want: []v{{"unknown_column", dsBenefits, "shoe_size"}},
		},
		{
			name: "filter on a column not allowed in filters",
			spec: `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number","filter":"id_number = '440106195001010010'"},{"dataset":"housing.property_owners","key":"id_number"}]}`,
			want: []v{{"column_use", dsBenefits, "id_number"}},
		},
		{
			name: "value column not allowed",
			spec: `{"type":"intersection_stats","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number"},{"dataset":"housing.property_owners","key":"id_number"}],"value":{"dataset":"housing.property_owners","column":"district"},"stats":["sum"]}`,
			want: []v{{"column_use", dsOwners, "district"}},
		},
		{
			name: "closed dataset",
			spec: `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.unemployment_benefits","key":"id_number"},{"dataset":"police.records","key":"id_number"}]}`,
			want: []v{{"sharing_closed", dsClosed, ""}},
		},
		{
			name: "members of another department's dataset",
			spec: `{"type":"psi_members","purpose":"p","inputs":[{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"hrss.unemployment_benefits","key":"id_number"}]}`,
			want: []v{{"members_own_dataset", dsOwners, ""}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil, nil)
			user := alice
			if strings.Contains(c.spec, "psi_members") {
				user = carol // has a key: only the dataset rule is broken
			}
			rec := f.do("POST", "/v1/jobs", bearer(user), c.spec)
			requireStatus(t, rec, http.StatusForbidden)
			e := errBody(t, rec)
			require.Equal(t, "policy_violation", e.Code)
			var got []v
			for _, x := range e.Violations {
				require.NotEmpty(t, x.Message)
				got = append(got, v{x.Rule, x.Dataset, x.Column})
			}
			require.Equal(t, c.want, got)
			f.requireEmpty()
		})
	}
}

func TestSubmitPSIMembersNeedsKey(t *testing.T) {
	f := newFixture(t, nil, nil)
	rec := f.do("POST", "/v1/jobs", bearer(alice), specMembers)
	requireStatus(t, rec, http.StatusForbidden)
	e := errBody(t, rec)
	require.Equal(t, "policy_violation", e.Code)
	require.Len(t, e.Violations, 1)
	require.Equal(t, "recipient_key", e.Violations[0].Rule)
	f.requireEmpty()

	// The same job from an analyst with a registered key is accepted.
	id := f.submit(carol, specMembers)
	require.Equal(t, carol, f.job(id).Owner)
}

func TestSubmitBodyLimit(t *testing.T) {
	pad := func(n int) string { return specPSI + strings.Repeat(" ", n-len(specPSI)) }
	t.Run("boundary", func(t *testing.T) {
		const limit = 4096
		f := newFixture(t, nil, func(c *Config) { c.MaxBodyBytes = limit })
		rec := f.do("POST", "/v1/jobs", bearer(alice), pad(limit+1))
		requireStatus(t, rec, http.StatusRequestEntityTooLarge)
		require.Equal(t, "too_large", errBody(t, rec).Code)
		f.requireEmpty()
		// Exactly at the limit is fine.
		f.submit(alice, pad(limit))
	})
	for name, n := range map[string]int{
		"default limit":                   2 << 20,
		"over the spec limit, under 1MiB": policy.MaxSpecBytes + 1,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil, nil)
			rec := f.do("POST", "/v1/jobs", bearer(alice), pad(n))
			requireStatus(t, rec, http.StatusRequestEntityTooLarge)
			require.Equal(t, "too_large", errBody(t, rec).Code)
			f.requireEmpty()
		})
	}
	t.Run("garbage past the limit", func(t *testing.T) {
		f := newFixture(t, nil, func(c *Config) { c.MaxBodyBytes = 4096 })
		rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI+strings.Repeat("x", 5000))
		requireStatus(t, rec, http.StatusRequestEntityTooLarge)
		f.requireEmpty()
	})
	t.Run("decision bodies", func(t *testing.T) {
		f := newFixture(t, nil, func(c *Config) { c.MaxBodyBytes = 4096 })
		id := f.submit(alice, specPSI)
		f.toReview(id, reviewResult)
		before := f.snapshot()
		big := `{"reason":"` + strings.Repeat("r", 5000) + `"}`
		for _, p := range []string{"/reject", "/approve"} {
			rec := f.do("POST", "/v1/jobs/"+id+p, bearer(rita), big)
			requireStatus(t, rec, http.StatusRequestEntityTooLarge)
		}
		requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/cancel", bearer(alice), big), http.StatusRequestEntityTooLarge)
		require.Equal(t, before, f.snapshot())
	})
}

func TestIdempotency(t *testing.T) {
	const key = "submit-2026-03-01-001"
	t.Run("repeated", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", key)
		requireStatus(t, rec, http.StatusAccepted)
		first := decodeJSON[wire.Submitted](t, rec)
		rec = f.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", key)
		requireStatus(t, rec, http.StatusOK)
		second := decodeJSON[wire.Submitted](t, rec)
		require.Equal(t, first, second)
		require.Len(t, f.allJobs(), 1)
		require.Equal(t, 1, f.countAction("job.submitted"))

		// The same key with another spec is refused, and creates nothing.
		rec = f.do("POST", "/v1/jobs", bearer(alice), specPSIFiltered, "Idempotency-Key", key)
		requireStatus(t, rec, http.StatusUnprocessableEntity)
		require.Equal(t, "idempotency_key_reused", errBody(t, rec).Code)
		require.Len(t, f.allJobs(), 1)

		// Keys are per user: bob's use of the same key is his own job.
		rec = f.do("POST", "/v1/jobs", bearer(bob), `{"type":"psi_cardinality","purpose":"eligibility check","inputs":[{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"hrss.unemployment_benefits","key":"id_number"}]}`, "Idempotency-Key", key)
		requireStatus(t, rec, http.StatusAccepted)
		require.NotEqual(t, first.ID, decodeJSON[wire.Submitted](t, rec).ID)

		// Without a key, identical submissions are separate jobs.
		a, b := f.submit(alice, specPSI), f.submit(alice, specPSI)
		require.NotEqual(t, a, b)
		require.Len(t, f.allJobs(), 4)
	})
	t.Run("concurrent", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		const n = 16
		start := make(chan struct{})
		type res struct {
			status int
			id     string
		}
		out := make(chan res, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", key)
				var s wire.Submitted
				_ = json.Unmarshal(rec.Body.Bytes(), &s) // checked below: one id
				out <- res{rec.Code, s.ID}
			}()
		}
		close(start)
		wg.Wait()
		close(out)
		statuses := map[int]int{}
		ids := map[string]bool{}
		for r := range out {
			statuses[r.status]++
			ids[r.id] = true
		}
		require.Equal(t, map[int]int{http.StatusAccepted: 1, http.StatusOK: n - 1}, statuses)
		require.Len(t, ids, 1)
		require.Len(t, f.allJobs(), 1)
		require.Equal(t, 1, f.countAction("job.submitted"))
	})
	t.Run("key length", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", strings.Repeat("k", MaxIdempotencyKey+1))
		requireStatus(t, rec, http.StatusBadRequest)
		require.Equal(t, "bad_request", errBody(t, rec).Code)
		f.requireEmpty()
		rec = f.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", strings.Repeat("k", MaxIdempotencyKey))
		requireStatus(t, rec, http.StatusAccepted)
	})
}

// A homomorphic job that cannot run on its datasets' declared sizes is
// refused at submission, with the reason, and nothing is queued: the
// 100,000-row aggregate that used to be accepted, queued and then fail.
func TestSubmitRefusedOnDeclaredSizes(t *testing.T) {
	agg := `{"type":"aggregate","purpose":"benefit totals","inputs":[{"dataset":"hrss.unemployment_benefits"}],"value":{"dataset":"","column":"monthly_benefit_fen"},"stats":["sum","variance"]}`
	withRows := func(rows int64, valueBound int64) func(*Config) {
		return func(c *Config) {
			cat := testCatalog()
			ds := cat[dsBenefits]
			ds.MaxRows = rows
			if valueBound > 0 {
				ds.DP = &policy.DP{Epsilon: 1, Budget: 10, ValueBound: valueBound}
			}
			cat[dsBenefits] = ds
			c.Catalog = cat
		}
	}
	// 100,000 rows: fine now (Σx and Σx² are exact up to 2^30 rows).
	f := newFixture(t, nil, withRows(100_000, 0))
	rec := f.do("POST", "/v1/jobs", bearer(alice), agg)
	requireStatus(t, rec, http.StatusAccepted)

	for name, c := range map[string]struct {
		cfg  func(*Config)
		rule string
		msg  string
	}{
		"more rows than one result can sum": {withRows(2_000_000_000, 0), "too_many_rows", "declares up to 2000000000 rows"},
		"values past 2^40":                  {withRows(1000, 1<<41), "value_range", "|x| ≤ 2^40"},
		"the operator's limit": {func(c *Config) {
			withRows(100_000, 0)(c)
			c.HEMaxRowsPerInput = 65536
		}, "too_many_rows", "he_max_rows_per_node"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil, c.cfg)
			rec := f.do("POST", "/v1/jobs", bearer(alice), agg)
			requireStatus(t, rec, http.StatusForbidden)
			e := errBody(t, rec)
			require.Equal(t, "policy_violation", e.Code)
			require.Len(t, e.Violations, 1)
			require.Equal(t, c.rule, e.Violations[0].Rule)
			require.Equal(t, dsBenefits, e.Violations[0].Dataset)
			require.Contains(t, e.Violations[0].Message, c.msg)
			f.requireEmpty()
		})
	}
}
