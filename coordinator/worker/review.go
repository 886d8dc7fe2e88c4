package worker

// Disclosure control of a job's result before a reviewer sees it, by
// policy/disclosure: the job's plan (k, the per-person row cap M, the DP
// noise and its ε), then ReviewCardinality, ReviewMembers or ReviewStats
// with what the nodes reported (differencing overlaps, flag mode) and the
// near-duplicate jobs found at submission. Every check says what it
// protects against (jobs.Check.Protects).

import (
	"context"
	"fmt"
	"math/big"

	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// plan is the job's disclosure plan from the current catalog. A catalog
// that cannot be read is a transient failure (a plan without it would
// drop the owners' k and noise); a job its datasets can no longer protect
// (a dp declaration added since submission, say) fails for good.
func (r *Runner) plan(ctx context.Context, j *jobs.Job) (*disclosure.Plan, error) {
	var cat policy.Catalog
	if r.Catalog != nil {
		var err error
		if cat, err = r.Catalog.Catalog(ctx); err != nil {
			return nil, fmt.Errorf("the dataset catalog is unavailable: %w", err)
		}
	}
	p, vs := disclosure.NewPlan(&j.Spec, cat)
	if len(vs) > 0 {
		return nil, permanent("%s", policy.Decision{Violations: vs}.Error())
	}
	return p, nil
}

// similar turns the near-duplicate jobs found at submission into
// overlaps for the differencing check (difference unknown: 0).
func similar(j *jobs.Job) []disclosure.Overlap {
	if j.Decision == nil {
		return nil
	}
	out := make([]disclosure.Overlap, 0, len(j.Decision.Similar))
	for _, s := range j.Decision.Similar {
		out = append(out, disclosure.Overlap{Job: s.Job, Why: s.Why})
	}
	return out
}

func checks(cs []disclosure.Check) []jobs.Check {
	out := make([]jobs.Check, len(cs))
	for i, c := range cs {
		out[i] = jobs.Check{Name: c.Name, Passed: c.Passed, Detail: c.Detail, Protects: c.Protects}
	}
	return out
}

func fromRelease(rel *disclosure.Release) *jobs.Review {
	return &jobs.Review{Result: rel.Result, Checks: checks(rel.Checks), Suppressed: rel.Suppressed}
}

func moments(count int64, sum, sumSq *big.Int, hist []int64) disclosure.Moments {
	return disclosure.Moments{Count: count, Sum: sum, SumSq: sumSq, Hist: hist}
}

// statsReview applies the plan to an aggregate's or intersection_stats'
// exact totals: noise, k, linked suppression, differencing.
func statsReview(j *jobs.Job, plan *disclosure.Plan, st *hefed.Stats, overlaps []disclosure.Overlap) (*jobs.Review, error) {
	in := disclosure.StatsInput{Total: moments(st.Count, st.Sum, st.SumSq, st.Histogram), Overlaps: overlaps}
	if st.Groups != nil {
		in.Groups = make(map[string]disclosure.Moments, len(st.Groups))
		for g, gs := range st.Groups {
			in.Groups[g] = moments(gs.Count, gs.Sum, gs.SumSq, gs.Histogram)
		}
	}
	rel, err := disclosure.ReviewStats(&j.Spec, plan, in, nil)
	if err != nil {
		return nil, permanent("%v", err)
	}
	return fromRelease(rel), nil
}
