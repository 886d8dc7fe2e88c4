package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestExpireConsents(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	store := openStore(t, clock)
	ctx := context.Background()
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}}
	mk := func(deadline time.Time) *jobs.Job {
		j, _, err := store.Create(ctx, &jobs.Job{Spec: spec, Owner: "alice", State: jobs.AwaitingConsent, ConsentDeadline: deadline}, "")
		require.NoError(t, err)
		return j
	}
	soon := mk(clock.Now().Add(time.Hour))
	later := mk(clock.Now().Add(48 * time.Hour))

	n, err := ExpireConsents(ctx, store, clock)
	require.NoError(t, err)
	require.Zero(t, n)

	clock.Advance(2 * time.Hour)
	n, err = ExpireConsents(ctx, store, clock)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, _ := store.Get(ctx, soon.ID)
	require.Equal(t, jobs.Expired, got.State)
	got, _ = store.Get(ctx, later.ID)
	require.Equal(t, jobs.AwaitingConsent, got.State)
}
