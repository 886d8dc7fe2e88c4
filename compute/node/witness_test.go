package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy/attest"
)

func nodePub(t *testing.T, name string) ed25519.PublicKey {
	t.Helper()
	k, err := attest.ParsePublicKey(nodetest.PublicKey(name))
	require.NoError(t, err)
	return k
}

// coordHead is a head of the coordinator's log signed with key.
func coordHead(t *testing.T, key ed25519.PrivateKey, seq uint64) *audit.SignedHead {
	t.Helper()
	sum := sha256.Sum256([]byte{byte(seq)})
	h, err := audit.SignHead(key, audit.CoordinatorLog, audit.Head{Seq: seq, Hash: attest.Digest(sum).String()})
	require.NoError(t, err)
	return &h
}

// Finish and Outcome record the coordinator's signed head (when it verifies
// under the node's own federation.coordinator) and answer with the node's
// signed head at that very entry.
func TestFinishAndOutcomeWitness(t *testing.T) {
	f := newFederation(t)
	hrss := f.svc["hrss"]
	ctx := context.Background()
	last := func() audit.Entry {
		es, err := f.logs["hrss"].All(ctx)
		require.NoError(t, err)
		return es[len(es)-1]
	}
	w := coordHead(t, nodetest.PrivateKey("coordinator"), 812)
	fin, err := hrss.Finish(ctx, f.caller, &nodeapi.FinishRequest{Header: nodeapi.Header{Job: "jw", Step: nodeapi.StepFinish, Attempt: 1}, Outcome: "ok", Witness: w})
	require.NoError(t, err)
	e := last()
	require.Equal(t, "job.finish", e.Action)
	require.Equal(t, w.String(), e.Detail["witness.coordinator"])
	require.NotNil(t, fin.Head)
	require.Equal(t, audit.Head{Seq: e.Seq, Hash: e.Hash}, fin.Head.Head())
	require.Equal(t, "hrss", fin.Head.Log)
	require.NoError(t, fin.Head.Verify(nodePub(t, "node-hrss")))

	oc, err := hrss.Outcome(ctx, f.caller, &nodeapi.OutcomeRequest{Header: nodeapi.Header{Job: "jw", Step: nodeapi.StepOutcome, Attempt: 1}, Outcome: "released",
		Purpose: "p", Datasets: []string{"hrss.benefits"}, Reviewer: "rita", Witness: coordHead(t, nodetest.PrivateKey("coordinator"), 813)})
	require.NoError(t, err)
	e = last()
	require.Equal(t, "job.released", e.Action)
	require.Contains(t, e.Detail, "witness.coordinator")
	require.NoError(t, oc.Head.Verify(nodePub(t, "node-hrss")))
	require.Equal(t, e.Hash, oc.Head.Hash)

	// The node's heads witness its log: the heads it handed out are in it.
	es, err := f.logs["hrss"].All(ctx)
	require.NoError(t, err)
	_, err = audit.CheckWitnessed(es, []audit.Witnessed{{In: 1, Head: *fin.Head}, {In: 2, Head: *oc.Head}}, nodePub(t, "node-hrss"))
	require.NoError(t, err)
}

// A head not signed by the coordinator the node believes, or of another
// log, is not recorded as a witness (the step still ends: witnessing never
// holds a job up), and the refusal is in the entry.
func TestForgedCoordinatorHeadNotRecorded(t *testing.T) {
	f := newFederation(t)
	hrss := f.svc["hrss"]
	ctx := context.Background()
	forged := coordHead(t, nodetest.PrivateKey("mallory"), 5)
	other, err := audit.SignHead(nodetest.PrivateKey("coordinator"), "housing", audit.Head{Seq: 5, Hash: forged.Hash})
	require.NoError(t, err)
	for _, w := range []*audit.SignedHead{forged, &other} {
		fin, err := hrss.Finish(ctx, f.caller, &nodeapi.FinishRequest{Header: nodeapi.Header{Job: "jw", Step: nodeapi.StepFinish, Attempt: 1}, Outcome: "ok", Witness: w})
		require.NoError(t, err)
		es, err := f.logs["hrss"].All(ctx)
		require.NoError(t, err)
		e := es[len(es)-1]
		require.NotContains(t, e.Detail, "witness.coordinator")
		require.NotEmpty(t, e.Detail["witness_refused"])
		require.NoError(t, fin.Head.Verify(nodePub(t, "node-hrss")))
	}
}
