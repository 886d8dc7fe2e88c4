package worker

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

func pubKey(t *testing.T, name string) ed25519.PublicKey {
	t.Helper()
	k, err := attest.ParsePublicKey(nodetest.PublicKey(name))
	require.NoError(t, err)
	return k
}

// At the end of a job the runner sends each node the coordinator's signed
// head and records the node's signed head in the job's next transition;
// the node records the coordinator's. Each side's copy then witnesses the
// other's log: every recorded head is in the other's chain, signed by its
// keeper.
func TestFinishExchangesWitnessedHeads(t *testing.T) {
	fed := nodetest.Start(t, map[string][]int{"hrss.benefits": rng(0, 40), "housing.owners": rng(20, 60)}, nil)
	store := openStore(t, nil)
	coordKey := nodetest.PrivateKey("coordinator")
	st := &states{ch: map[string]chan jobs.State{}}
	r := &Runner{
		Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), ChunkSize: 16, OnState: st.on, Worker: "test",
		SignedHead: func(ctx context.Context) (*audit.SignedHead, error) {
			h, err := store.Audit().(audit.HeadReader).Head(ctx)
			if err != nil {
				return nil, err
			}
			sh, err := audit.SignHead(coordKey, audit.CoordinatorLog, h)
			return &sh, err
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "eligibility check", Inputs: []policy.Input{
		{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.AwaitingReview)

	coord, err := store.Audit().All(ctx)
	require.NoError(t, err)
	var rv *audit.Entry
	for i := range coord {
		if coord[i].Job == j.ID && coord[i].Action == "job.awaiting_review" {
			rv = &coord[i]
		}
	}
	require.NotNil(t, rv)
	for _, dept := range []string{"hrss", "housing"} {
		require.Contains(t, rv.Detail, "witness."+dept)
		heads, err := audit.WitnessedHeads(coord, dept)
		require.NoError(t, err)
		require.Len(t, heads, 1)
		nodeLog, err := fed.Audits[dept].All(ctx)
		require.NoError(t, err)
		c, err := audit.CheckWitnessed(nodeLog, heads, pubKey(t, "node-"+dept))
		require.NoError(t, err)
		require.Equal(t, 1, c.Checked)
		// The witnessed head is the node's finish entry.
		require.Equal(t, "job.finish", nodeLog[heads[0].Head.Seq-1].Action)

		back, err := audit.WitnessedHeads(nodeLog, audit.CoordinatorLog)
		require.NoError(t, err)
		require.Len(t, back, 1, "node %s kept the coordinator's head", dept)
		c, err = audit.CheckWitnessed(coord, back, pubKey(t, "coordinator"))
		require.NoError(t, err)
		require.Equal(t, 1, c.Checked)
	}
}
