package api

// Disclosure control at submission (policy/disclosure): a job its
// datasets cannot protect is refused; the ε it spends is the plan's; and
// the analyst's recent jobs that ask nearly the same question are named
// for the reviewer (differencing).

import (
	"context"
	"slices"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// NearDuplicateJobs is how many of an analyst's most recent jobs a new
// spec is compared with (those within disclosure.DefaultWindow).
const NearDuplicateJobs = 256

// plan returns the job's disclosure plan, or the violations that make it
// impossible to protect (a DP job summing an input without dp.value_bound,
// for every input of a horizontal aggregate; a DP member list).
func plan(spec *policy.Spec, cat policy.Catalog) (*disclosure.Plan, []policy.Violation) {
	return disclosure.NewPlan(spec, cat)
}

// epsilonCharged is the ε the plan charges each DP dataset, for the
// job's decision.
func epsilonCharged(p *disclosure.Plan) map[string]float64 {
	if p == nil || p.DP == nil {
		return nil
	}
	out := make(map[string]float64, len(p.DP.Charges))
	for name, micro := range p.DP.Charges {
		out[name] = float64(micro) / 1e6
	}
	return out
}

// similarJobs lists the analyst's recent jobs (the last NearDuplicateJobs,
// within the window, not refused or abandoned) whose specs nearly match
// spec, newest first.
func (a *API) similarJobs(ctx context.Context, user string, spec *policy.Spec) ([]policy.SimilarJob, error) {
	js, err := a.cfg.Store.List(ctx, jobs.ListFilter{Owner: user, Limit: NearDuplicateJobs})
	if err != nil {
		return nil, err
	}
	since := a.cfg.Clock.Now().Add(-disclosure.DefaultWindow)
	var out []policy.SimilarJob
	for _, j := range js {
		if j.CreatedAt.Before(since) || slices.Contains([]jobs.State{jobs.Rejected, jobs.Cancelled, jobs.Expired}, j.State) {
			continue
		}
		if near, why := disclosure.NearDuplicate(j.Spec, *spec); near {
			out = append(out, policy.SimilarJob{Job: j.ID, Why: why})
		}
	}
	return out, nil
}
