package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// TestReclaimedLeasesWaitingTheirTurnAreRenewed: one Reclaim hands a
// worker every job of a dead worker, and it runs them one after the other.
// The ones waiting their turn must be kept alive; before, they went idle
// while the first ran, the other worker reclaimed them again (attempt 3,
// 4, …) and the first worker then ran them on lost leases — in the chaos
// test (cmd/unseen) jobs reached attempt 36 that way.
func TestReclaimedLeasesWaitingTheirTurnAreRenewed(t *testing.T) {
	fed := nodetest.Start(t, map[string][]int{"a.x": rng(0, 300), "b.y": rng(150, 450)}, nil)
	// Each node request takes 120 ms longer (network latency), so a job
	// outlasts the lease idle time several times over.
	nodes := map[string]*nodeapi.Client{}
	for dept, c := range fed.Clients {
		u, err := url.Parse(c.BaseURL)
		require.NoError(t, err)
		proxy := httputil.NewSingleHostReverseProxy(u)
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(120 * time.Millisecond) // simulated latency, not synchronisation
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(slow.Close)
		nodes[dept] = nodeapi.NewClient(dept, slow.URL, nodetest.Token)
	}
	store := openStore(t, nil)
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}}
	var ids []string
	for range 3 {
		ids = append(ids, submit(t, store, spec).ID)
	}
	// A worker that claims all three and dies (never heartbeats).
	for range 3 {
		l, err := store.Claim(context.Background(), "dead", 0)
		require.NoError(t, err)
		require.NotNil(t, l)
	}

	st := &states{ch: map[string]chan jobs.State{}}
	r := &Runner{
		Store: store, Nodes: nodes, Catalog: staticCatalog(fed.Catalog),
		ChunkSize: 50, LeaseIdle: 300 * time.Millisecond, OnState: st.on, Worker: "live",
		Backoff: func(int) time.Duration { return 0 },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 2); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	for _, id := range ids {
		st.wait(t, id, jobs.AwaitingReview)
	}
	for _, id := range ids {
		j, err := store.Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, 2, j.Attempt, "job %s: reclaimed once from the dead worker, never taken over again while waiting its turn: %+v", id, j.History)
		_, res := review(t, store, id)
		require.EqualValues(t, 150, res["count"])
	}
}
