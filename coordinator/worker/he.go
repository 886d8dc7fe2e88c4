package worker

import (
	"context"
	"errors"
	"slices"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// runHE runs aggregate and intersection_stats jobs. A failure during
// release is permanent: a ciphertext is never decrypted twice, so the job
// fails and a re-run recomputes from fresh encryptions.
func (r *Runner) runHE(ctx context.Context, l *jobs.Lease) (*jobs.Review, error) {
	j := l.Job
	if r.HE == nil {
		return nil, permanent("this coordinator has no homomorphic keys: run the key ceremony (unseen keys init) first")
	}
	ref := hefed.JobRef{ID: j.ID, Attempt: l.Attempt, Spec: j.Spec, Requester: policy.Requester{User: j.Owner, Department: j.Department}}
	var (
		st     *hefed.Stats
		err    error
		checks []jobs.Check
	)
	switch j.Spec.Type {
	case policy.Aggregate:
		_ = r.Store.Progress(ctx, j.ID, l.Attempt, jobs.Progress{Step: "encrypt, add, release"})
		st, err = r.HE.Aggregate(ctx, ref)
		if err == nil {
			below := make([]bool, len(j.Spec.Inputs))
			for i, in := range j.Spec.Inputs {
				below[i] = slices.Contains(st.BelowK, in.Dataset)
			}
			checks = append(checks, isolationCheck(j, below))
		}
	case policy.IntersectionStats:
		primary := -1
		for i, in := range j.Spec.Inputs {
			if in.Dataset == j.Spec.Value.Dataset {
				primary = i
			}
		}
		if primary < 0 {
			return nil, permanent("the value dataset %s is not one of the inputs", j.Spec.Value.Dataset)
		}
		pr, perr := r.psiPhase(ctx, l, primary)
		if perr != nil {
			return nil, perr
		}
		checks = append(checks, isolationEnforced())
		_ = r.Store.Progress(ctx, j.ID, l.Attempt, jobs.Progress{Step: "encrypt, mask, release"})
		st, err = r.HE.IntersectionStats(ctx, ref, pr.parties[primary].(*nodeapi.Party), pr.res.Positions)
	}
	if err != nil {
		if errors.Is(err, hefed.ErrRelease) || errors.Is(err, hefed.ErrJob) {
			return nil, permanentError{err}
		}
		return nil, err
	}
	total := moments{Count: st.Count, Sum: st.Sum, SumSq: st.SumSq, Hist: st.Histogram}
	var groups map[string]moments
	if st.Groups != nil {
		groups = make(map[string]moments, len(st.Groups))
		for g, gs := range st.Groups {
			groups[g] = moments{Count: gs.Count, Sum: gs.Sum, SumSq: gs.SumSq, Hist: gs.Histogram}
		}
	}
	if dp := planDP(j, r.catalog(ctx)); dp != nil {
		dp.apply(&total)
		for g, m := range groups {
			dp.apply(&m)
			groups[g] = m
		}
		checks = append(checks, dp.check("every count and sum"))
	}
	rv, err := statsReview(&j.Spec, total, groups, r.minCount(ctx, j))
	if err != nil {
		return nil, err
	}
	rv.Checks = append(checks, rv.Checks...)
	return rv, nil
}
