package node_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// The bounds the API refuses jobs on (policy) are the arithmetic's (he).
func TestHEBoundsMatchPolicy(t *testing.T) {
	require.Equal(t, he.MaxJobRows, policy.MaxHERows)
	require.Equal(t, he.MaxValue, policy.MaxHEValue)
	require.Equal(t, policy.MaxInputs, he.MaxContributors)
}

// A value past 2^40 is refused by its position (the CSV line), never by
// value, whatever the row count; and a node adds at most its share of the
// job's rows.
func TestHEAggregateRangeAndShare(t *testing.T) {
	big := 1<<40 + 5 // amount = row index in nodetest data
	cfgs, _ := nodetest.Configs(t, map[string][]int{"hrss.benefits": append(rng(0, 20), big, 7)}, nil)
	l := &audit.MemLog{}
	s, err := node.New(cfgs["hrss"], node.Options{Audit: l})
	require.NoError(t, err)
	c, err := s.Authenticate(nodetest.Token, "192.0.2.7:4711")
	require.NoError(t, err)
	ctx := context.Background()
	spec := policy.Spec{Type: policy.Aggregate, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits", Value: "amount"}}, Stats: []string{"sum"}}
	req := func(job string, s policy.Spec, maxRows int64) *nodeapi.HEAggregateRequest {
		return &nodeapi.HEAggregateRequest{Header: nodeapi.Header{Job: job, SpecHash: s.Hash(), Step: nodeapi.StepHEAggregate, Attempt: 1}, Spec: s, Requester: alice, MaxRows: maxRows}
	}
	_, err = s.HEAggregate(ctx, c, req("range", spec, he.MaxJobRows))
	e := refusal(t, err, node.KindBadRequest, "out_of_range")
	require.Contains(t, e.Message, "line 22") // header, 20 rows, then the big one
	require.Contains(t, e.Message, "column amount")
	require.NotContains(t, e.Message, fmt.Sprint(big), "the value stays at the node")

	// 2^40 itself is fine; only the rows bound the job.
	spec.Inputs[0].Filter = "amount < 1000"
	_, err = s.HEAggregate(ctx, c, req("share", spec, 10))
	e = refusal(t, err, node.KindBadRequest, "too_many_rows")
	require.Contains(t, e.Message, "share (10)")
	for _, bad := range []int64{0, he.MaxJobRows + 1} {
		_, err = s.HEAggregate(ctx, c, req(fmt.Sprint("bound-", bad), spec, bad))
		refusal(t, err, node.KindBadRequest, "bad_request")
	}
	// Within the bounds the request gets as far as the keys (no ceremony here).
	_, err = s.HEAggregate(ctx, c, req("ok", spec, he.MaxJobRows))
	refusal(t, err, node.KindConflict, "no_keys")

	// The value column is the one the spec names for this input.
	other := spec
	other.Inputs = []policy.Input{{Dataset: "hrss.benefits", Value: "district"}}
	_, err = s.HEAggregate(ctx, c, req("col", other, he.MaxJobRows))
	refusal(t, err, node.KindForbidden, "policy_violation")
}
