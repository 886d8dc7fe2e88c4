package worker

import (
	"context"
	"errors"

	"github.com/unseen-data/unseen/jobs"
)

// ExpireConsents moves every job still awaiting consent past its deadline
// to expired, and returns how many it moved. Runners call it periodically;
// it is safe to run from several at once (each move is compare-and-set).
func ExpireConsents(ctx context.Context, s jobs.Jobs, clock jobs.Clock) (int, error) {
	js, err := s.List(ctx, jobs.ListFilter{States: []jobs.State{jobs.AwaitingConsent}, Limit: 1000})
	if err != nil {
		return 0, err
	}
	now := clock.Now()
	n := 0
	for _, j := range js {
		if j.ConsentDeadline.IsZero() || !now.After(j.ConsentDeadline) {
			continue
		}
		_, err := s.Transition(ctx, j.ID, jobs.Change{From: jobs.AwaitingConsent, Attempt: j.Attempt, To: jobs.Expired,
			Actor: "system", Role: "system", Note: "consent deadline passed"})
		switch {
		case err == nil:
			n++
		case errors.Is(err, jobs.ErrConflict):
			// Consented, refused or expired by someone else meanwhile.
		default:
			return n, err
		}
	}
	return n, nil
}
