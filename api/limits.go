package api

import (
	"context"
	"fmt"
	"sort"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// charge is one counter a submission spent from.
type charge struct {
	key    string
	amount int64
}

// chargeLimits spends, for every dataset of the job, one job from the
// analyst's rate limit and, for a DP dataset, the ε the job's plan charges
// it (plan.DP.Charges: the job's ε, the smallest of its DP datasets')
// from their privacy budget. If any would be passed, what was already
// spent is refunded and the job is refused with the rule, the dataset and
// what is left. The caller refunds the returned charges if the job is not
// created after all.
func (a *API) chargeLimits(ctx context.Context, cat policy.Catalog, spec *policy.Spec, user string, p *disclosure.Plan) ([]charge, []policy.Violation, error) {
	var done []charge
	fail := func(v policy.Violation) ([]charge, []policy.Violation, error) {
		a.refund(ctx, done)
		return nil, []policy.Violation{v}, nil
	}
	names := spec.Datasets()
	sort.Strings(names)
	now := a.cfg.Clock.Now()
	for _, name := range names {
		ds, ok := cat[name]
		if !ok {
			continue
		}
		if rl := ds.RateLimit; rl != nil {
			window := now.UnixNano() / int64(rl.Per)
			key := fmt.Sprintf("rate:%s:%s:%d:%d", user, name, int64(rl.Per), window)
			_, ok, err := a.cfg.Store.Spend(ctx, key, 1, int64(rl.Jobs), rl.Per)
			if err != nil {
				a.refund(ctx, done)
				return nil, nil, err
			}
			if !ok {
				return fail(policy.Violation{Rule: "rate_limit", Dataset: name, Message: fmt.Sprintf("at most %d jobs per %s per analyst; try again later", rl.Jobs, rl.Per)})
			}
			done = append(done, charge{key, 1})
		}
		if dp := ds.DP; dp != nil && p != nil && p.DP != nil {
			key := fmt.Sprintf("dp:%s:%s", user, name)
			e := p.DP.Charges[name]
			total, ok, err := a.cfg.Store.Spend(ctx, key, e, policy.MicroEpsilon(dp.Budget), 0)
			if err != nil {
				a.refund(ctx, done)
				return nil, nil, err
			}
			if !ok {
				return fail(policy.Violation{Rule: "dp_budget", Dataset: name, Message: fmt.Sprintf("this job needs ε = %g but only %g of your budget of %g is left", float64(e)/1e6, float64(policy.MicroEpsilon(dp.Budget)-total)/1e6, dp.Budget)})
			}
			done = append(done, charge{key, e})
		}
	}
	return done, nil, nil
}

// refund gives back what a refused or duplicate submission spent.
func (a *API) refund(ctx context.Context, cs []charge) {
	for _, c := range cs {
		if _, _, err := a.cfg.Store.Spend(context.WithoutCancel(ctx), c.key, -c.amount, 1<<62, 0); err != nil {
			a.log.Error("refunding a budget charge failed", "key", c.key, "err", err)
		}
	}
}
