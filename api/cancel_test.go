package api

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
)

// claimingStore has a worker claim the job just before the API's first
// attempt to cancel it, as a busy coordinator's worker would.
type claimingStore struct {
	*boltstore.Store
	once atomic.Bool
}

func (s *claimingStore) Transition(ctx context.Context, id string, c jobs.Change) (*jobs.Job, error) {
	if c.To == jobs.Cancelled && s.once.CompareAndSwap(false, true) {
		if _, err := s.Store.Claim(ctx, "w1", 0); err != nil {
			return nil, err
		}
	}
	return s.Store.Transition(ctx, id, c)
}

// A job a worker claims while the analyst cancels it is still cancelled
// (it had not finished), not refused with a conflict.
func TestCancelWhileClaimed(t *testing.T) {
	var cs *claimingStore
	f := newFixture(t, nil, func(c *Config) {
		cs = &claimingStore{Store: c.Store.(*boltstore.Store)}
		c.Store = cs
	})
	id := f.submit(alice, specPSI)
	rec := f.do("POST", "/v1/jobs/"+id+"/cancel", bearer(alice), `{"reason":"asked the wrong question"}`)
	requireStatus(t, rec, 200)
	require.Equal(t, jobs.Cancelled, decodeJSON[wire.Job](t, rec).State)
	require.True(t, cs.once.Load(), "the worker claimed the job first")
	var states []jobs.State
	for _, e := range f.job(id).History {
		states = append(states, e.State)
	}
	require.Equal(t, []jobs.State{jobs.Queued, jobs.Running, jobs.Cancelled}, states)
}
