package worker

import (
	"context"
	"errors"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// runHE runs aggregate and intersection_stats jobs. A failure during
// release is permanent: each output of a job is decrypted at most once,
// ever, so the job fails and computing it again takes a new job.
func (r *Runner) runHE(ctx context.Context, l *jobs.Lease, plan *disclosure.Plan) (*jobs.Review, error) {
	j := l.Job
	if r.HE == nil {
		return nil, permanent("this coordinator has no homomorphic keys: run the key ceremony (unseen keys init) first")
	}
	ref := hefed.JobRef{ID: j.ID, Attempt: l.Attempt, Spec: j.Spec, Requester: policy.Requester{User: j.Owner, Department: j.Department}}
	for _, c := range j.Consents {
		if c.Signed != nil {
			ref.Consents = append(ref.Consents, *c.Signed)
		}
	}
	var (
		st       *hefed.Stats
		err      error
		overlaps []disclosure.Overlap
	)
	switch j.Spec.Type {
	case policy.Aggregate:
		_ = r.Store.Progress(ctx, j.ID, l.Attempt, jobs.Progress{Step: "encrypt, add, release"})
		// Every node refuses an input below its k (input_below_k), so an
		// aggregate that ran has none.
		if st, err = r.HE.Aggregate(ctx, ref); err == nil {
			overlaps = st.Overlaps
		}
	case policy.IntersectionStats:
		primary := -1
		vds := j.Spec.ValueDataset()
		for i, in := range j.Spec.Inputs {
			if in.Dataset == vds {
				primary = i
			}
		}
		if primary < 0 {
			return nil, permanent("the value dataset %s is not one of the inputs", vds)
		}
		pr, perr := r.psiPhase(ctx, l, primary)
		if perr != nil {
			return nil, perr
		}
		overlaps = pr.overlaps
		_ = r.Store.Progress(ctx, j.ID, l.Attempt, jobs.Progress{Step: "encrypt, mask, release"})
		st, err = r.HE.IntersectionStats(ctx, ref, pr.parties[primary].(*nodeapi.Party), pr.res.Positions)
	}
	if err != nil {
		if errors.Is(err, hefed.ErrRelease) || errors.Is(err, hefed.ErrJob) {
			return nil, permanentError{err}
		}
		return nil, err
	}
	return statsReview(j, plan, st, append(overlaps, similar(j)...))
}
